"""PII redaction with presidio: e-mail, phone, card, IBAN, IP, US SSN patterns and spaCy PERSON
names replaced by typed placeholders (`<EMAIL>`, `<PHONE>`, ...); fails closed."""

from smelt.corpus.pii.redact import redact_documents, redact_text

__all__ = ["redact_documents", "redact_text"]
