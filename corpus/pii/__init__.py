"""PII redaction with presidio: e-mail, phone, card, IBAN, IP, US SSN patterns and spaCy PERSON
names replaced by typed placeholders (`<EMAIL>`, `<PHONE>`, ...); fails closed.

presidio imports `transformers` and `torch` at import time, for an NLP engine and a device
probe smelt never uses (patterns need neither; spaCy's small pipeline runs without torch).
Measured here, that is 20-27 s of a 23-30 s import on a loaded 2-core machine, paid by every
process that redacts: a small nightly build spent most of its time on it. So presidio is
imported with both hidden (its optional imports then fall back to "not installed"); both stay
importable afterwards for everything else in the process.
"""

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def hidden_module(name: str) -> Iterator[None]:
    """Inside the block, `import name` raises ImportError (unless it is already imported)."""
    if name in sys.modules:
        yield
        return
    sys.modules[name] = None  # type: ignore[assignment] - the import system's "not found"
    try:
        yield
    finally:
        if sys.modules.get(name, ...) is None:
            del sys.modules[name]


with hidden_module("transformers"), hidden_module("torch"):
    import presidio_analyzer  # noqa: F401 - loaded once, here, without them

from smelt.corpus.pii.redact import redact_documents, redact_text  # noqa: E402

__all__ = ["redact_documents", "redact_text"]
