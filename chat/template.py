"""ChatML rendering with the tokenizer's own chat template: text, prompt ids, training ids + mask.

A conversation becomes model input in exactly one way: the Jinja chat template that ships with
the tokenizer (`chat_template.jinja` beside `tokenizer.json`, the Hugging Face convention) is
rendered the way transformers' `apply_chat_template` renders it (a sandboxed environment with
`trim_blocks` and `lstrip_blocks`), and the whole text is encoded at once without added special
tokens. So what `smelt chat` sends, what SFT trains on and what an exported model gets from
`apply_chat_template` are the same ids.

Training needs to know which tokens the assistant wrote. Rather than hard-coding ChatML, the
span of each assistant turn is read off the template itself: the turn starts where the
generation prompt of the conversation before it ends (`<|im_start|>assistant\\n`) and runs up to
and including the end-of-turn token (`<|im_end|>`); the newline after it belongs to the
template, not to the assistant. A token carries loss when its characters overlap such a span.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from smelt import storage
from smelt.chat.messages import Message
from smelt.errors import ConfigError, InputError

# ChatML (OpenAI; Qwen, SmolLM): the template `smelt tokenizer train` ships.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
TURN_START, END_OF_TURN = "<|im_start|>", "<|im_end|>"
CHATML_TOKENS = (TURN_START, END_OF_TURN)
# A folder holding a tokenizer marks it as a chat tokenizer with this file (transformers >= 4.43
# reads it too). An SFT run writes it beside its tokenizer.json: its presence makes a run a chat
# model for `smelt chat`, `smelt serve` and `export-hf`.
TEMPLATE_FILE = "chat_template.jinja"


def require_chatml(tokenizer: Any, where: str) -> tuple[int, int]:
    """The ids of `<|im_start|>` and `<|im_end|>`; ConfigError naming `where` when absent."""
    ids = [tokenizer.token_to_id(token) for token in CHATML_TOKENS]
    missing = [t for t, i in zip(CHATML_TOKENS, ids, strict=True) if i is None]
    if missing:
        raise ConfigError(
            f"{where}: the tokenizer has no {' or '.join(missing)} token, so it cannot hold "
            "ChatML conversations; train the tokenizer with `smelt tokenizer train` (it adds them)"
        )
    return ids[0], ids[1]


def load_template(folder_uri: str) -> str | None:
    """The chat template stored in a tokenizer or run folder, or None when it has none."""
    uri = storage.join(folder_uri, TEMPLATE_FILE)
    return storage.read_text(uri) if storage.exists(uri) else None


def save_template(folder_uri: str, template: str = CHAT_TEMPLATE) -> None:
    """Mark a tokenizer or run folder as chat-capable by writing its template."""
    storage.write_text(storage.join(folder_uri, TEMPLATE_FILE), template)


@dataclass(frozen=True)
class EncodedConversation:
    """Token ids of a rendered conversation and, per token, whether it is the assistant's."""

    ids: list[int]
    assistant_mask: list[bool]

    def labels(self, ignore_index: int = -100) -> list[int]:
        """Next-token targets for training: `ids` shifted left, ignored off the assistant's
        tokens (position t predicts token t + 1, which must be an assistant token)."""
        shifted = [
            token if keep else ignore_index
            for token, keep in zip(self.ids[1:], self.assistant_mask[1:], strict=True)
        ]
        return [*shifted, ignore_index]


def render(
    messages: Sequence[Message], template: str = CHAT_TEMPLATE, add_generation_prompt: bool = False
) -> str:
    """The conversation as text, exactly as `apply_chat_template(tokenize=False)` renders it."""
    from jinja2.exceptions import TemplateError

    plain = [{"role": m.role, "content": m.content} for m in messages]
    try:
        return _compile(template).render(
            messages=plain, add_generation_prompt=add_generation_prompt
        )
    except TemplateError as exc:
        raise InputError(f"the chat template refused the conversation: {exc}") from None


@lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    """transformers' environment: sandboxed, trim_blocks + lstrip_blocks, loop controls,
    `raise_exception` and a `tojson` that does not escape HTML."""
    from jinja2.exceptions import TemplateError, TemplateSyntaxError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def tojson(value: Any, indent: int | None = None) -> str:
        return json.dumps(value, ensure_ascii=False, indent=indent)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template)
    except TemplateSyntaxError as exc:
        raise ConfigError(f"the chat template does not parse: {exc}") from None


class ChatTemplate:
    """A Jinja chat template bound to a tokenizer (`tokenizers.Tokenizer`)."""

    def __init__(self, tokenizer: Any, template: str = CHAT_TEMPLATE) -> None:
        require_chatml(tokenizer, "chat template")
        self.tokenizer = tokenizer
        self.source = template
        self.end_of_turn_id = tokenizer.token_to_id(END_OF_TURN)

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = False) -> str:
        return render(messages, self.source, add_generation_prompt)

    def encode_prompt(self, messages: Sequence[Message]) -> list[int]:
        """Ids that ask the model for the next assistant turn (generation prompt appended)."""
        return self._encode(self.render(messages, add_generation_prompt=True)).ids

    def assistant_spans(self, messages: Sequence[Message]) -> tuple[str, list[tuple[int, int]]]:
        """The rendered text and the [start, end) character span of every assistant turn:
        its content and its end-of-turn token."""
        text = self.render(messages)
        spans = []
        for i, message in enumerate(messages):
            if message.role != "assistant":
                continue
            prompt = self.render(messages[:i], add_generation_prompt=True)
            turn = self.render(messages[: i + 1])
            if not (text.startswith(prompt) and text.startswith(turn)):
                raise ConfigError(
                    "the chat template renders a conversation differently from its prefix, so "
                    "assistant turns cannot be located; use a template that appends turn by turn"
                )
            eot = text.find(END_OF_TURN, len(prompt), len(turn))
            spans.append((len(prompt), eot + len(END_OF_TURN) if eot >= 0 else len(turn)))
        return text, spans

    def encode_conversation(self, messages: Sequence[Message]) -> EncodedConversation:
        """Ids of the whole conversation and the mask of the assistant's tokens (for SFT)."""
        text, spans = self.assistant_spans(messages)
        encoding = self._encode(text)
        mask = [any(lo < end and start < hi for start, end in spans) for lo, hi in encoding.offsets]
        return EncodedConversation(ids=list(encoding.ids), assistant_mask=mask)

    def _encode(self, text: str) -> Any:
        return self.tokenizer.encode(text, add_special_tokens=False)
