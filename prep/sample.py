"""The tokenizer's training sample and its held-out documents, streamed from a corpus.

Every partition contributes up to `sample_bytes / partitions` bytes of documents, read in
storage order, so memory stays bounded whatever the corpus size and the same corpus always
gives the same sample. Documents whose id hashes below `heldout_fraction` are kept out of
training and measure bytes per token afterwards.

On a small corpus that rule alone holds out too few documents to measure anything, often none
(a few dozen documents at 1%), so the sample also keeps a *reserve*: the
`HELDOUT_MIN_DOCS` scanned documents with the smallest id hashes, held back from the trainer
until the end. Then as many of them as needed join the held-out set to reach
`min(HELDOUT_MIN_DOCS, scanned // HELDOUT_SHARE)` documents, and the rest are trained on. The
choice depends only on the documents, so it is as deterministic as the sample.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field

from smelt.corpus.tables import iter_rows
from smelt.prep.corpus_input import DOCUMENT_COLUMNS, id_fraction

HELDOUT_MIN_DOCS = 16  # held out on any corpus with 16 * HELDOUT_SHARE documents or more
HELDOUT_SHARE = 5  # ...and never more than one scanned document in five by the reserve


@dataclass
class Sample:
    """A streamed sample; `texts()` feeds the trainer and fills the counts and `heldout`."""

    partitions: tuple[str, ...]
    sample_bytes: int
    heldout_fraction: float
    heldout_max_bytes: int
    docs: int = 0
    bytes: int = 0
    scanned: int = 0
    heldout: list[str] = field(default_factory=list)
    heldout_bytes: int = 0
    _reserve: list[tuple[float, str, str]] = field(default_factory=list)  # max-heap by hash

    def texts(self) -> Iterator[str]:
        """Training texts in a deterministic order; held-out documents never appear here."""
        budget = max(1, self.sample_bytes // len(self.partitions))
        for partition in self.partitions:
            taken = 0
            for doc_id, text in iter_rows(partition, DOCUMENT_COLUMNS):
                if not text:
                    continue
                self.scanned += 1
                fraction = id_fraction(doc_id)
                if fraction < self.heldout_fraction:
                    if self.heldout_bytes < self.heldout_max_bytes:
                        self._hold_out(text)
                    continue
                released = self._keep_in_reserve(fraction, doc_id, text)
                if released is not None:
                    taken += self._count(released)
                    yield released
                if taken >= budget:
                    break
        yield from self._release_reserve()

    def _keep_in_reserve(self, fraction: float, doc_id: str, text: str) -> str | None:
        """Keep the document if it is among the smallest hashes; the text to train on now."""
        entry = (-fraction, doc_id, text)
        if len(self._reserve) < HELDOUT_MIN_DOCS:
            heapq.heappush(self._reserve, entry)
            return None
        if entry > self._reserve[0]:  # a smaller hash than the reserve's largest
            return heapq.heapreplace(self._reserve, entry)[2]
        return text

    def _release_reserve(self) -> Iterator[str]:
        """Hold out the reserve's smallest hashes up to the guaranteed count; train on the rest."""
        wanted = min(HELDOUT_MIN_DOCS, self.scanned // HELDOUT_SHARE)
        for _, _, text in sorted(self._reserve, reverse=True):  # smallest hash first
            if len(self.heldout) < wanted:
                self._hold_out(text)
            else:
                self._count(text)
                yield text
        self._reserve.clear()

    def _hold_out(self, text: str) -> None:
        self.heldout.append(text)
        self.heldout_bytes += len(text.encode("utf-8"))

    def _count(self, text: str) -> int:
        size = len(text.encode("utf-8"))
        self.docs += 1
        self.bytes += size
        return size
