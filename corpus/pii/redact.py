"""Replace PII with typed placeholders; fail closed.

A document whose analysis raises is quarantined (`stage="pii"`), never passed through
unredacted. Overlapping findings keep the higher score, then the longer span (an IP address
that also parses as a phone number is an `<IP_ADDRESS>`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import islice

from presidio_analyzer import RecognizerResult

from smelt.corpus.config import PiiConfig
from smelt.corpus.document import Document, Quarantined
from smelt.corpus.pii.analyzer import get_analyzer
from smelt.corpus.stats import CorpusStats

log = logging.getLogger(__name__)

BATCH_DOCS = 64  # documents whose name windows share one spaCy `nlp.pipe` call


def resolve_overlaps(results: Iterable[RecognizerResult]) -> list[RecognizerResult]:
    """Non-overlapping findings, best first: higher score, then longer, then earlier."""
    chosen: list[RecognizerResult] = []
    for result in sorted(results, key=lambda r: (-r.score, -(r.end - r.start), r.start)):
        if all(result.end <= kept.start or result.start >= kept.end for kept in chosen):
            chosen.append(result)
    return sorted(chosen, key=lambda r: r.start)


def redact_text(
    text: str, results: Iterable[RecognizerResult], placeholders: dict[str, str]
) -> tuple[str, Counter[str]]:
    """`text` with each finding replaced by its entity's placeholder, and counts per entity."""
    pieces, counts, position = [], Counter(), 0
    for result in resolve_overlaps(results):
        pieces += [
            text[position : result.start],
            placeholders.get(result.entity_type, f"<{result.entity_type}>"),
        ]
        counts[result.entity_type] += 1
        position = result.end
    pieces.append(text[position:])
    return "".join(pieces), counts


def redact_documents(
    docs: Iterable[Document], config: PiiConfig, stats: CorpusStats
) -> Iterator[Document | Quarantined]:
    """Redacted documents (counted in `stats.pii`), or `Quarantined` where analysis failed."""
    if not config.enabled:
        yield from docs
        return
    analyzer = get_analyzer(config)
    placeholders = {**PiiConfig().placeholders, **config.placeholders}  # a partial map extends
    stream = iter(docs)
    while batch := list(islice(stream, BATCH_DOCS)):
        try:
            analyzer.prepare([doc.text for doc in batch])
        except Exception as exc:  # noqa: BLE001 - retried per document below, which isolates it
            log.warning(
                "pii: batch NER failed (%s: %s); analyzing one by one", type(exc).__name__, exc
            )
            analyzer.prepare([])
        for doc in batch:
            try:
                results = analyzer.analyze(doc.text, config.score_threshold)
                text, counts = redact_text(doc.text, results, placeholders)
            except Exception as exc:  # noqa: BLE001 - fail closed: any error quarantines
                yield Quarantined(
                    source=doc.source,
                    reason=f"pii: {type(exc).__name__}: {exc}",
                    id=doc.id,
                    stage="pii",
                )
                continue
            stats.pii.update(counts)
            yield dataclasses.replace(doc, text=text)
