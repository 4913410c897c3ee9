"""The presidio analyzer smelt uses: pattern recognizers plus a batched spaCy PERSON recognizer,
fully offline, built once per process.

- `AnalyzerEngine()` with no arguments wants `en_core_web_lg` and downloads it; we always pass
  an explicit engine: presidio's `NoOpNlpEngine` (the pattern recognizers are self-contained)
  and our own `PersonRecognizer` for names (see person.py).
- tldextract (presidio's e-mail validation) fetches the public suffix list on first use unless
  `TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS` is empty when tldextract is imported. Another library
  (trafilatura, courlan) may have imported it first, so `offline_tldextract` also swaps its
  default extractor for one that uses the bundled snapshot only.
- Pattern recognizers are slow on long texts (phone ~8 ms and IP ~5 ms per 3 KB), so each
  recognizer runs on a document only when a cheap *trigger* regex, a superset of what it can
  match, finds something: most prose has no `@`, no 7-digit run, no dotted quad.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")


def offline_tldextract() -> None:
    """Make `tldextract.extract` use its bundled suffix list, never the network."""
    import tldextract.tldextract as module

    if module.TLD_EXTRACTOR.suffix_list_urls:
        module.TLD_EXTRACTOR = module.TLDExtract(suffix_list_urls=(), fallback_to_snapshot=True)


offline_tldextract()

from presidio_analyzer import (  # noqa: E402 - after the environment is set
    AnalyzerEngine,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NoOpNlpEngine  # noqa: E402
from presidio_analyzer.predefined_recognizers import (  # noqa: E402
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    UsSsnRecognizer,
)

from smelt.corpus.config import PiiConfig  # noqa: E402
from smelt.corpus.pii.person import NAME_SCORE, find_people  # noqa: E402
from smelt.errors import ConfigError  # noqa: E402

LANGUAGE = "en"
WINDOW_PAD = 80  # characters of context around a trigger match (longest item: an IBAN, 42)


class SsnRecognizer(UsSsnRecognizer):
    """presidio's US SSN patterns, without its exemption of published sample numbers.

    presidio drops `078-05-1120`, `123-45-6789` and SSNs with unissued area numbers as "not
    real"; a training corpus should not keep SSN-shaped strings either way, so only its
    shape check (one kind of delimiter) stays.
    """

    def invalidate_result(self, pattern_text: str) -> bool:
        """Reject only mixed delimiters (`123-45.6789` is not an SSN shape)."""
        return len({char for char in pattern_text if char in ".- "}) > 1


class PhoneShapeRecognizer(PatternRecognizer):
    """Phone-number *shapes* that presidio's PhoneRecognizer (libphonenumber, which checks that
    area and country codes are assigned) lets through: `(488) 697-4452`, `+1 439-716-9340`,
    `+61 4 1234 5678`. Written numbers in these shapes are phone numbers, assigned or not."""

    PATTERNS = [
        Pattern("NANP", r"(?:\+1[ .-]?)?(?:\(\d{3}\)[ .-]?|\b\d{3}[.-])\d{3}[.-]\d{4}\b", 0.5),
        Pattern("international", r"\+\d{1,3}[ .-]\(?\d{1,4}\)?(?:[ .-]\d{2,4}){2,4}\b", 0.5),
    ]

    def __init__(self) -> None:
        super().__init__(
            supported_entity="PHONE_NUMBER",
            patterns=self.PATTERNS,
            name="PhoneShapeRecognizer",
            supported_language="en",
        )


class RegionPhoneRecognizer(PhoneRecognizer):
    """presidio's libphonenumber recognizer over fewer national formats (US/CA, GB, DE, FR,
    IN; its default adds IL and BR): each region is one more full parse of the window, and
    numbers written with `+` and a country code parse in every region anyway."""

    def __init__(self) -> None:
        super().__init__(supported_regions=("US", "GB", "DE", "FR", "IN"))


# entity -> (recognizers, trigger): the trigger matches wherever a recognizer could
PATTERN_RECOGNIZERS = {
    "EMAIL_ADDRESS": ((EmailRecognizer,), re.compile(r"@")),
    "PHONE_NUMBER": (
        (RegionPhoneRecognizer, PhoneShapeRecognizer),
        re.compile(r"(?:\d[^\w\n]{0,3}){7}"),
    ),
    "CREDIT_CARD": ((CreditCardRecognizer,), re.compile(r"(?:\d[ -]?){12}\d")),
    "IBAN_CODE": ((IbanRecognizer,), re.compile(r"[A-Za-z]{2}\d{2}")),
    "IP_ADDRESS": (
        (IpRecognizer,),
        re.compile(r"\d\.\d{1,3}\.\d|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:"),
    ),
    "US_SSN": ((SsnRecognizer,), re.compile(r"\d{3}\D{0,2}\d{2}\D{0,2}\d{4}")),
}


class PersonRecognizer(EntityRecognizer):
    """PERSON from spaCy NER on name-shaped windows; `prepare` batches a list of texts."""

    def __init__(self) -> None:
        super().__init__(
            supported_entities=["PERSON"], name="SmeltSpacyPerson", supported_language=LANGUAGE
        )
        self._prepared: dict[int, tuple[str, list[tuple[int, int]]]] = {}

    def load(self) -> None:
        """The model loads lazily on first use (see person.load_ner)."""

    def prepare(self, texts: Sequence[str]) -> None:
        """Run NER for all `texts` in one batch; `analyze` then only looks results up."""
        self._prepared = {
            id(text): (text, spans) for text, spans in zip(texts, find_people(texts), strict=True)
        }

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: object = None
    ) -> list[RecognizerResult]:
        """Results for `text`, from the prepared batch when it is there."""
        prepared = self._prepared.get(id(text))
        spans = prepared[1] if prepared and prepared[0] is text else find_people([text])[0]
        return [RecognizerResult("PERSON", start, end, NAME_SCORE) for start, end in spans]


class PiiAnalyzer:
    """presidio `AnalyzerEngine` over the configured entities, with triggers and batching."""

    def __init__(self, entities: Sequence[str], ner: bool) -> None:
        unknown = sorted(set(entities) - set(PATTERN_RECOGNIZERS) - {"PERSON"})
        if unknown:
            raise ConfigError(
                f"pii.entities: unsupported {unknown}; supported: "
                f"{sorted(PATTERN_RECOGNIZERS) + ['PERSON']}"
            )
        registry = RecognizerRegistry(supported_languages=[LANGUAGE])
        for entity in entities:
            for recognizer in PATTERN_RECOGNIZERS.get(entity, ((), None))[0]:
                registry.add_recognizer(recognizer())
        self.person = PersonRecognizer() if ner and "PERSON" in entities else None
        if self.person:
            registry.add_recognizer(self.person)
        self.entities = list(entities)
        self.engine = AnalyzerEngine(
            nlp_engine=NoOpNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": "none"}]),
            registry=registry,
            supported_languages=[LANGUAGE],
        )

    def prepare(self, texts: Sequence[str]) -> None:
        """Batch the expensive NER for the next `analyze` calls on these texts."""
        if self.person:
            self.person.prepare(texts)

    def windows(self, text: str) -> list[tuple[int, int, list[str]]]:
        """Merged [start, end) windows around trigger matches, with the entities to run there.

        Pattern recognizers then scan a few hundred characters per finding instead of the whole
        document; windows reach `WINDOW_PAD` characters past each trigger, then out to the next
        space, so an item the trigger touches lies wholly inside its window.
        """
        found: list[tuple[int, int, str]] = []
        for entity in self.entities:
            if entity not in PATTERN_RECOGNIZERS:
                continue
            for match in PATTERN_RECOGNIZERS[entity][1].finditer(text):
                low = text.rfind(" ", 0, max(0, match.start() - WINDOW_PAD)) + 1
                high = text.find(" ", min(len(text), match.end() + WINDOW_PAD))
                found.append((low, len(text) if high < 0 else high, entity))
        merged: list[tuple[int, int, list[str]]] = []
        for low, high, entity in sorted(found):
            if merged and low <= merged[-1][1]:
                last = merged[-1]
                merged[-1] = (
                    last[0],
                    max(high, last[1]),
                    last[2] if entity in last[2] else [*last[2], entity],
                )
            else:
                merged.append((low, high, [entity]))
        return merged

    def analyze(self, text: str, score_threshold: float) -> list[RecognizerResult]:
        """All entities in `text` scoring at least `score_threshold`; exceptions propagate."""
        results = []
        for low, high, entities in self.windows(text):
            for result in self.engine.analyze(
                text[low:high],
                language=LANGUAGE,
                entities=entities,
                score_threshold=score_threshold,
            ):
                result.start += low
                result.end += low
                results.append(result)
        if self.person:
            results += [
                result
                for result in self.person.analyze(text, ["PERSON"])
                if result.score >= score_threshold
            ]
        return results


_ANALYZERS: dict[tuple[tuple[str, ...], bool], PiiAnalyzer] = {}


def get_analyzer(config: PiiConfig) -> PiiAnalyzer:
    """The process-wide analyzer for these entities (built on first use, then reused)."""
    key = (tuple(config.entities), config.ner)
    if key not in _ANALYZERS:
        _ANALYZERS[key] = PiiAnalyzer(*key)
    return _ANALYZERS[key]
