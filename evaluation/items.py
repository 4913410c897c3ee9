"""What a task is made of, after its rows are read: scoring requests, not file rows.

Every task reduces to (context, continuation) pairs whose log-likelihood the model gives:

- `ChoiceItem`: a multiple-choice question, one pair per choice (lm-evaluation-harness's
  `multiple_choice` output type). Most sets share one context and vary the continuation;
  Winogrande's partial scoring varies the context and scores the same continuation.
- `ClozeItem`: one pair whose continuation must be the model's greedy prediction (the
  harness's `loglikelihood` output type: LAMBADA's last word).

Texts for bits per byte are plain strings (`TextDoc`), scored in rolling windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Request = tuple[str, str]  # (context, continuation)
TaskKind = Literal["multiple_choice", "cloze"]


@dataclass(frozen=True)
class ChoiceItem:
    """One question: a request per choice, the gold index, and the length of each choice
    string (`acc_norm` divides each log-likelihood by it, as the harness does)."""

    requests: tuple[Request, ...]
    gold: int
    lengths: tuple[int, ...]


@dataclass(frozen=True)
class ClozeItem:
    """One continuation to predict: scored by its log-likelihood and whether greedy decoding
    would produce it exactly."""

    context: str
    continuation: str

    @property
    def requests(self) -> tuple[Request, ...]:
        return ((self.context, self.continuation),)


@dataclass(frozen=True)
class Task:
    """A named set of items read from `source`."""

    name: str
    kind: TaskKind
    items: tuple[ChoiceItem | ClozeItem, ...]
    source: str
    layout: str  # the layout the rows were read in ("generic", "hellaswag", ...)


@dataclass(frozen=True)
class TextDoc:
    """One document of a text set: bits per byte counts its UTF-8 bytes."""

    text: str

    @property
    def num_bytes(self) -> int:
        return len(self.text.encode("utf-8"))

    @property
    def num_words(self) -> int:
        """Words as the harness counts them for word perplexity (`re.split(r"\\s+", doc)`)."""
        import re

        return len(re.split(r"\s+", self.text))


@dataclass(frozen=True)
class TextSet:
    """A named set of documents read from `source`."""

    name: str
    docs: tuple[TextDoc, ...]
    source: str
