"""Evaluation data from a corpus itself: its held-out documents and a quiz built from them.

`smelt shards build --val-fraction F` sends every document whose id hashes below F
(`id_fraction`) to the val split, so those documents never reach training. They make an honest
text set for bits per byte, and a next-words quiz: each item is the opening of a held-out
sentence, the words that really follow it, and the words that follow other sentences. It
measures little beyond "has the model learnt this kind of text", which is what a demo or a
smoke test of a fresh corpus needs, with nothing to download.
"""

from __future__ import annotations

import random
import re

from smelt.corpus.tables import iter_rows
from smelt.prep.corpus_input import id_fraction, open_corpus

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def held_out_texts(corpus_uri: str, val_fraction: float, limit: int = 200) -> list[str]:
    """Up to `limit` documents of the corpus that the shards' val split holds out."""
    texts: list[str] = []
    for partition in open_corpus(corpus_uri).partitions:
        for doc_id, text in iter_rows(partition, ["id", "text"]):
            if id_fraction(doc_id) < val_fraction and text.strip():
                texts.append(text)
                if len(texts) == limit:
                    return texts
    return texts


def next_words_quiz(
    texts: list[str],
    items: int = 100,
    choices: int = 4,
    context_words: int = 8,
    answer_words: int = 4,
    seed: int = 0,
) -> list[dict]:
    """Generic-layout rows: a sentence's first words -> its next words among `choices` others."""
    sentences = [
        words
        for text in texts
        for sentence in _SENTENCE_END.split(text)
        if len(words := sentence.split()) >= context_words + answer_words
        and all(word.isprintable() for word in words)
    ]
    rng = random.Random(seed)
    rng.shuffle(sentences)
    rows = []
    pool = sentences[items:] or sentences  # distractors come from other sentences
    for words in sentences[:items]:
        answer = " ".join(words[context_words : context_words + answer_words])
        others: list[str] = []
        for _ in range(50 * choices):  # bounded: a pool of look-alike sentences gives up
            if len(others) == choices - 1:
                break
            candidate = rng.choice(pool)
            option = " ".join(candidate[context_words : context_words + answer_words])
            if option != answer and option not in others:
                others.append(option)
        if len(others) < choices - 1:
            continue
        label = rng.randrange(choices)
        rows.append(
            {
                "context": " ".join(words[:context_words]),
                "choices": [*others[:label], answer, *others[label:]],
                "label": label,
            }
        )
    return rows
