"""ChatML rendering: the same text and ids as transformers' `apply_chat_template`, assistant
masks exact to the token for each input form, and the generation prompt a prefix of training."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smelt.chat import (
    CHAT_TEMPLATE,
    END_OF_TURN,
    ChatTemplate,
    Message,
    as_messages,
    detect_form,
    render,
    require_chatml,
    to_messages,
)
from smelt.errors import ConfigError, InputError

# Text a user might send: letters, digits, punctuation, spaces and newlines, some non-ASCII.
TEXT = st.text(
    alphabet=st.sampled_from(list("abcxyz ABC019.,?!'\"-\n") + ["é", "ß", "文", "🐍"]),
    min_size=1,
    max_size=40,
)


@st.composite
def conversations(draw) -> list[dict[str, str]]:
    messages = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(TEXT)})
    for _ in range(draw(st.integers(1, 3))):
        messages.append({"role": "user", "content": draw(TEXT)})
        messages.append({"role": "assistant", "content": draw(TEXT)})
    return messages


@pytest.fixture(scope="module")
def auto_tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(conversation=conversations(), generation_prompt=st.booleans())
def test_rendering_equals_apply_chat_template(
    auto_tokenizer, tokenizer, conversation, generation_prompt
):
    template = ChatTemplate(tokenizer)
    messages = as_messages(conversation)
    ours = template.render(messages, add_generation_prompt=generation_prompt)
    theirs = auto_tokenizer.apply_chat_template(
        conversation, tokenize=False, add_generation_prompt=generation_prompt
    )
    assert ours == theirs
    their_ids = auto_tokenizer(theirs, add_special_tokens=False)["input_ids"]
    if generation_prompt:
        assert template.encode_prompt(messages) == their_ids
    else:
        assert template.encode_conversation(messages).ids == their_ids


RECORDS = {
    "openai": {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name a prime."},
            {"role": "assistant", "content": "Seven is prime."},
            {"role": "user", "content": "Another, with digits: 1013?"},
            {"role": "assistant", "content": "Yes, 1013 is prime too. Ünïcödé 🐍!"},
        ]
    },
    "sharegpt": {
        "conversations": [
            {"from": "human", "value": "Say hello\nin two lines."},
            {"from": "gpt", "value": "Hello,\nworld."},
        ]
    },
    "alpaca": {
        "instruction": "Translate to French.",
        "input": "Good morning",
        "output": "Bonjour",
    },
}


@pytest.mark.parametrize("form", sorted(RECORDS))
def test_exactly_the_assistant_tokens_carry_loss(tokenizer, form):
    record = RECORDS[form]
    assert detect_form(record) == form
    messages = to_messages(record)
    encoded = ChatTemplate(tokenizer).encode_conversation(messages)
    assert len(encoded.ids) == len(encoded.assistant_mask)
    # group the tokens into runs of equal mask; every masked run is one assistant turn,
    # its content followed by <|im_end|>, token for token
    runs: list[tuple[bool, list[int]]] = []
    for token, masked in zip(encoded.ids, encoded.assistant_mask, strict=True):
        if runs and runs[-1][0] == masked:
            runs[-1][1].append(token)
        else:
            runs.append((masked, [token]))
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=False)  # noqa: E731
    assistant = [decode(ids) for masked, ids in runs if masked]
    expected = [m.content + END_OF_TURN for m in messages if m.role == "assistant"]
    assert assistant == expected
    # and nothing else is masked: the unmasked runs are the rest of the rendered text
    text = render(messages)
    rebuilt = "".join(decode(ids) for _, ids in runs)
    assert rebuilt == text
    assert sum(encoded.assistant_mask) == sum(len(ids) for masked, ids in runs if masked)
    # labels: position t is trained to predict token t + 1 exactly when that token is masked
    labels = encoded.labels()
    for t in range(len(encoded.ids) - 1):
        want = encoded.ids[t + 1] if encoded.assistant_mask[t + 1] else -100
        assert labels[t] == want
    assert labels[-1] == -100


def test_generation_prompt_is_the_prefix_training_sees(tokenizer):
    """What `smelt chat` sends before a reply is exactly what SFT trained before that reply."""
    template = ChatTemplate(tokenizer)
    messages = to_messages(RECORDS["openai"])
    full = template.encode_conversation(messages)
    for i, message in enumerate(messages):
        if message.role != "assistant":
            continue
        prompt = template.encode_prompt(messages[:i])
        assert full.ids[: len(prompt)] == prompt
        assert full.assistant_mask[len(prompt)]  # the first token after it is trained
        assert not full.assistant_mask[len(prompt) - 1]


def test_forms_read_into_one_shape():
    assert to_messages(RECORDS["alpaca"]) == [
        Message("user", "Translate to French.\n\nGood morning"),
        Message("assistant", "Bonjour"),
    ]
    assert to_messages({"instruction": "Hi", "output": "Hello"})[0] == Message("user", "Hi")
    assert to_messages(RECORDS["sharegpt"])[1] == Message("assistant", "Hello,\nworld.")
    developer = {"messages": [{"role": "developer", "content": "x"}]}
    assert to_messages(developer) == [Message("system", "x")]
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}] * 2}]}
    assert to_messages(parts) == [Message("user", "aa")]


@pytest.mark.parametrize(
    ("record", "named"),
    [
        ({"text": "plain"}, "'messages' (OpenAI)"),
        ({"messages": []}, "non-empty list"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "'tool'"),
        ({"messages": [{"role": "user"}]}, "needs 'role' and 'content'"),
        ({"conversations": [{"from": "alien", "value": "x"}]}, "'alien'"),
        ({"messages": [{"role": "user", "content": 5}]}, "must be text"),
    ],
)
def test_bad_records_are_refused_by_name(record, named):
    with pytest.raises(InputError, match=re.escape(named)):
        to_messages(record)


def test_a_tokenizer_without_chatml_is_refused():
    from tokenizers import Tokenizer, models

    bare = Tokenizer(models.BPE())
    bare.add_special_tokens(["<|endoftext|>", "<|im_start|>"])
    with pytest.raises(ConfigError, match=r"no <\|im_end\|> token"):
        require_chatml(bare, "base run")
    with pytest.raises(ConfigError, match=r"no <\|im_end\|> token"):
        ChatTemplate(bare, CHAT_TEMPLATE)


def test_a_template_that_does_not_parse_is_a_config_error(tokenizer):
    broken = ChatTemplate(tokenizer, "{% for m in messages %}")
    with pytest.raises(ConfigError, match="does not parse"):
        broken.render([Message("user", "x")])
