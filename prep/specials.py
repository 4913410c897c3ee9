"""The tokenizer's atomic tokens and its chat template.

Control tokens come first (so `<|endoftext|>` is id 0), then the PII placeholders of the corpus
the tokenizer is trained on: the corpus stage writes `<EMAIL>` and friends into the text, and a
placeholder split into pieces would cost tokens and blur what the model learns of it.
"""

from __future__ import annotations

from collections.abc import Iterable

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
# ChatML (OpenAI; Qwen, SmolLM): the template transformers' `apply_chat_template` renders.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def special_tokens(placeholders: Iterable[str]) -> tuple[str, ...]:
    """All atomic tokens, in id order: the control tokens, then `placeholders` (deduplicated)."""
    extra = dict.fromkeys(p for p in placeholders if p not in CONTROL_TOKENS)
    return CONTROL_TOKENS + tuple(extra)
