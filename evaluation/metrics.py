"""From per-request scores to the numbers a report shows, as lm-evaluation-harness 0.4 computes
them (`ConfigurableTask.process_results` and `lm_eval.api.metrics`).

- `acc`: the choice with the highest log-likelihood is the gold one (`np.argmax`: the first of
  equal maxima wins); `acc_norm`: the same after dividing each log-likelihood by the length in
  characters of its choice string. Standard errors are the sample standard deviation over
  items divided by sqrt(n) (the harness's `mean_stderr`).
- cloze (LAMBADA): `acc` = share of continuations that greedy decoding reproduces exactly;
  `perplexity` = exp(-mean log-likelihood per item).
- texts: `bits_per_byte` = -sum(log-likelihood) / sum(UTF-8 bytes) / ln 2 (tokenizer-free, so
  models with different tokenizers compare); byte, word and token perplexities beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from smelt.evaluation.items import ChoiceItem, ClozeItem, TextDoc
from smelt.evaluation.scorer import Score


def mean_stderr(values: Sequence[float]) -> float:
    """Standard error of the mean (sample standard deviation / sqrt(n)); 0 for one value."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return math.sqrt(variance / n)


def _exp(value: float) -> float:
    """exp that saturates to infinity (an untrained model's word perplexity can overflow)."""
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf


def choice_predictions(item: ChoiceItem, scores: Sequence[Score]) -> tuple[int, int]:
    """(prediction, length-normalised prediction) for one multiple-choice item."""
    lls = np.array([s.loglikelihood for s in scores], dtype=np.float64)
    lengths = np.array(item.lengths, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # an empty choice: as the harness
        normalised = lls / lengths
    return int(np.argmax(lls)), int(np.argmax(normalised))


def choice_metrics(
    items: Sequence[ChoiceItem], scores: Sequence[Sequence[Score]]
) -> dict[str, Any]:
    """acc, acc_norm, n and their standard errors over a multiple-choice task."""
    hits, hits_norm = [], []
    for item, item_scores in zip(items, scores, strict=True):
        pred, pred_norm = choice_predictions(item, item_scores)
        hits.append(float(pred == item.gold))
        hits_norm.append(float(pred_norm == item.gold))
    n = len(items)
    return {
        "acc": sum(hits) / n,
        "acc_norm": sum(hits_norm) / n,
        "n": n,
        "acc_stderr": mean_stderr(hits),
        "acc_norm_stderr": mean_stderr(hits_norm),
    }


def cloze_metrics(items: Sequence[ClozeItem], scores: Sequence[Score]) -> dict[str, Any]:
    """Last-word accuracy and perplexity (LAMBADA). One continuation per item, so length
    normalisation changes nothing: acc_norm equals acc."""
    hits = [float(s.greedy) for s in scores]
    n = len(items)
    acc = sum(hits) / n
    mean_ll = sum(s.loglikelihood for s in scores) / n
    return {
        "acc": acc,
        "acc_norm": acc,
        "n": n,
        "acc_stderr": mean_stderr(hits),
        "acc_norm_stderr": mean_stderr(hits),
        "perplexity": _exp(-mean_ll),
    }


def text_metrics(docs: Sequence[TextDoc], results: Sequence[tuple[float, int]]) -> dict[str, Any]:
    """Bits per byte and perplexities of a text set from (log-likelihood, tokens) per doc."""
    total_ll = sum(ll for ll, _ in results)
    num_bytes = sum(doc.num_bytes for doc in docs)
    num_words = sum(doc.num_words for doc in docs)
    num_tokens = sum(tokens for _, tokens in results)
    return {
        "bits_per_byte": -total_ll / num_bytes / math.log(2),
        "byte_perplexity": _exp(-total_ll / num_bytes),
        "word_perplexity": _exp(-total_ll / num_words),
        "token_perplexity": _exp(-total_ll / num_tokens),
        "docs": len(docs),
        "bytes": num_bytes,
        "words": num_words,
        "tokens": num_tokens,
    }
