"""The scorer tokenizes, truncates, windows and batches as lm-evaluation-harness does, and its
speed-ups (length-sorted batches, projecting only scored positions, chunks) change no score."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from smelt.evaluation import scorer as scorer_module
from smelt.evaluation.items import ChoiceItem
from smelt.evaluation.metrics import choice_metrics, choice_predictions, text_metrics
from smelt.evaluation.scorer import Score, Scorer
from smelt.training.inference import open_checkpoint


@pytest.fixture(scope="module")
def opened(trained_run: Path):
    return open_checkpoint(str(trained_run))


class _Stub:
    """Just enough of a model for the tokenization and windowing code."""

    class config:  # noqa: N801 - mimics ModelConfig's attribute
        max_seq_len = 4096
        vocab_size = 10


class _Tokenizer:
    def token_to_id(self, token: str) -> int:
        return 0


@settings(max_examples=300, deadline=None)
@given(
    tokens=st.lists(st.integers(1, 9), max_size=200),
    length=st.integers(1, 70),
)
def test_rolling_windows_are_the_harness_windows(tokens: list[int], length: int) -> None:
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    scorer = Scorer(_Stub(), _Tokenizer(), max_length=length)  # type: ignore[arg-type]
    expected = [
        make_disjoint_window(w)
        for w in get_rolling_token_windows(
            tokens, prefix_token=0, max_seq_len=length, context_len=1
        )
    ]
    windows = scorer.rolling_windows(tokens)
    assert windows == [(list(a), list(b)) for a, b in expected]
    assert [t for _, continuation in windows for t in continuation] == tokens  # each token once


def test_pairs_are_split_as_the_harness_splits_them(opened) -> None:
    scorer = Scorer(opened.model, opened.tokenizer)
    encode = lambda text: opened.tokenizer.encode(text).ids  # noqa: E731
    [(context, continuation)] = scorer.encode_requests([("Return the value  ", "of x")])
    assert context == encode("Return the value")  # trailing spaces move to the continuation
    assert context + continuation == encode("Return the value  of x")
    [(context, continuation)] = scorer.encode_requests([("", " of x")])
    assert context == [opened.tokenizer.token_to_id("<|endoftext|>")]  # the prefix token
    assert continuation == opened.tokenizer.encode(" of x", add_special_tokens=False).ids


def test_scores_do_not_depend_on_batching_or_chunking(
    opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = [
        ("The", " import statement"),
        ("A class definition defines a class object", " and binds it"),
        ("", " Lambda expressions"),
        ("If the syntax is used", " in a function"),
        ("x" * 300, " truncated from the left"),  # longer than the model's 64 positions
    ]
    one_by_one = Scorer(opened.model, opened.tokenizer, batch_size=1).loglikelihood(requests)
    monkeypatch.setattr(scorer_module, "LOGIT_CHUNK_ELEMENTS", 3 * opened.config.vocab_size)
    batched = Scorer(opened.model, opened.tokenizer, batch_size=4).loglikelihood(requests)
    assert [s.loglikelihood for s in batched] == pytest.approx(
        [s.loglikelihood for s in one_by_one], abs=1e-4
    )
    assert [s.greedy for s in batched] == [s.greedy for s in one_by_one]


def test_a_score_is_the_sum_of_the_models_log_probabilities(opened) -> None:
    """The reference computation, spelled out: full logits of the truncated window."""
    scorer = Scorer(opened.model, opened.tokenizer)
    context, continuation = "x" * 300, " truncated from the left"
    [(ctx_ids, cont_ids)] = scorer.encode_requests([(context, continuation)])
    window = (ctx_ids + cont_ids)[-(64 + 1) :][:-1]
    with torch.no_grad():
        logprobs = torch.log_softmax(opened.model.logits(torch.tensor([window]))[0], dim=-1)
    positions = range(len(window) - len(cont_ids), len(window))
    expected = sum(logprobs[p, t].item() for p, t in zip(positions, cont_ids, strict=True))
    greedy = all(logprobs[p].argmax().item() == t for p, t in zip(positions, cont_ids, strict=True))
    [score] = scorer.loglikelihood([(context, continuation)])
    assert score.loglikelihood == pytest.approx(expected, abs=1e-4)
    assert score.greedy == greedy


def test_too_long_settings_and_continuations_are_refused(opened) -> None:
    from smelt.errors import InputError

    with pytest.raises(InputError, match="max_seq_len 64"):
        Scorer(opened.model, opened.tokenizer, max_length=65)
    scorer = Scorer(opened.model, opened.tokenizer, max_length=8)
    with pytest.raises(InputError, match="longer than the model's maximum length 8"):
        scorer.loglikelihood([("a", " " + "word " * 20)])


def test_acc_norm_divides_by_the_choice_length_and_ties_go_to_the_first() -> None:
    item = ChoiceItem(requests=(("q", " a"), ("q", " bbbb")), gold=1, lengths=(1, 4))
    assert choice_predictions(item, [Score(-2.0, False), Score(-4.0, False)]) == (0, 1)
    assert choice_predictions(item, [Score(-3.0, False), Score(-3.0, False)])[0] == 0
    result = choice_metrics([item, item], [[Score(-2.0, False), Score(-4.0, False)]] * 2)
    assert (result["acc"], result["acc_norm"], result["n"]) == (0.0, 1.0, 2)


def test_bits_per_byte_counts_utf8_bytes() -> None:
    import math

    from smelt.evaluation.items import TextDoc

    docs = [TextDoc("héllo"), TextDoc("ab")]  # 6 + 2 bytes
    result = text_metrics(docs, [(-4 * math.log(2), 3), (-4 * math.log(2), 1)])
    assert result["bits_per_byte"] == pytest.approx(1.0)
    assert (result["bytes"], result["tokens"]) == (8, 4)
