"""Streaming detokenization (whole characters, stop strings) and cutting history to fit."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smelt.chat import Message, TextStream, fit_to_context
from smelt.errors import InputError

WORDS = st.text(alphabet=st.sampled_from(list("ab c\nxé文🐍")), min_size=0, max_size=30)


def _stream(tokenizer, text: str, stops: list[str]) -> tuple[list[str], str]:
    stream = TextStream(tokenizer, stops)
    pieces = [stream.push(t) for t in tokenizer.encode(text).ids]
    pieces.append(stream.finish())
    return pieces, stream.text


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=WORDS,
    stops=st.lists(
        st.text(alphabet=st.sampled_from(list("ab c🐍")), min_size=1, max_size=3), max_size=2
    ),
)
def test_streamed_text_stops_before_the_first_stop_string(tokenizer, text, stops):
    pieces, shown = _stream(tokenizer, text, stops)
    assert "".join(pieces) == shown
    assert not any("\ufffd" in p for p in pieces)  # never half a character
    assert not any(s in shown for s in stops)  # no stop string is ever shown
    if any(s in text for s in stops):  # it ends right where a stop string begins
        assert any(text.startswith(shown + s) for s in stops)
    else:
        assert shown == text


def test_multibyte_characters_wait_for_their_last_byte(tokenizer):
    ids = tokenizer.encode("🐍").ids
    assert len(ids) > 1  # byte-level BPE splits the emoji (vocabulary of 400)
    stream = TextStream(tokenizer)
    assert [stream.push(t) for t in ids] == [""] * (len(ids) - 1) + ["🐍"]


def test_a_stop_string_is_held_back_then_cut(tokenizer):
    stream = TextStream(tokenizer, ["STOP"])
    shown = "".join(stream.push(t) for t in tokenizer.encode("go on STOP and more").ids)
    assert shown == "go on " and stream.stopped
    assert stream.push(tokenizer.encode("x").ids[0]) == ""


def _count(messages: list[Message]) -> int:
    """A stand-in prompt size: one unit per message plus its length in words."""
    return sum(1 + len(m.content.split()) for m in messages)


def test_history_loses_whole_turns_oldest_first_and_keeps_the_system_prompt():
    messages = [
        Message("system", "be brief"),  # 3
        Message("user", "one"),  # 2
        Message("assistant", "first answer here"),  # 4
        Message("user", "two"),  # 2
        Message("assistant", "second"),  # 2
        Message("user", "three"),  # 2
    ]
    kept, dropped = fit_to_context(messages, _count, budget=_count(messages))
    assert (kept, dropped) == (messages, 0)
    # dropping the oldest user message alone would fit 13, but never an answer without its
    # question: the whole first turn goes
    for budget in (13, 10):
        kept, dropped = fit_to_context(messages, _count, budget=budget)
        assert dropped == 2 and kept == [messages[0], *messages[3:]]
    kept, dropped = fit_to_context(messages, _count, budget=5)
    assert dropped == 4 and kept == [messages[0], messages[5]]
    with pytest.raises(InputError, match="newest message and the system prompt take 5 tokens"):
        fit_to_context(messages, _count, budget=4)
