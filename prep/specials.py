"""The tokenizer's atomic tokens and its chat template.

Control tokens come first (so `<|endoftext|>` is id 0), then the PII placeholders of the corpus
the tokenizer is trained on: the corpus stage writes `<EMAIL>` and friends into the text, and a
placeholder split into pieces would cost tokens and blur what the model learns of it.
"""

from __future__ import annotations

from collections.abc import Iterable

from smelt.chat.template import CHAT_TEMPLATE  # noqa: F401 - the tokenizer ships it

EOS = "<|endoftext|>"
PAD = "<pad>"
CONTROL_TOKENS = (
    EOS,
    "<|im_start|>",
    "<|im_end|>",
    PAD,
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
)


def special_tokens(placeholders: Iterable[str]) -> tuple[str, ...]:
    """All atomic tokens, in id order: the control tokens, then `placeholders` (deduplicated)."""
    extra = dict.fromkeys(p for p in placeholders if p not in CONTROL_TOKENS)
    return CONTROL_TOKENS + tuple(extra)
