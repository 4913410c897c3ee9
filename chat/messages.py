"""Conversations as smelt reads them: a list of `Message(role, content)`.

Three published layouts become that one form, detected per record or named:

- OpenAI `{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}`
  (`developer`, OpenAI's newer name for the system role, is read as `system`);
- ShareGPT `{"conversations": [{"from": "system"|"human"|"gpt", "value": str}, ...]}`;
- Alpaca `{"instruction": str, "input": str (optional), "output": str}`: the instruction and the
  input, separated by a blank line, are the user turn, the output the assistant's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from smelt.errors import InputError

ROLES = ("system", "user", "assistant")
FORMS = ("openai", "sharegpt", "alpaca")
_OPENAI_ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
}
_SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
}


@dataclass(frozen=True)
class Message:
    role: str  # one of ROLES
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InputError(f"message role {self.role!r} is not one of {', '.join(ROLES)}")
        if not isinstance(self.content, str):
            raise InputError(f"the content of a {self.role} message must be text")


def detect_form(record: Mapping[str, Any]) -> str:
    """'openai', 'sharegpt' or 'alpaca', from the keys a record has."""
    if "messages" in record:
        return "openai"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record and "output" in record:
        return "alpaca"
    raise InputError(
        f"a record with keys {sorted(record)} is no conversation: expected 'messages' (OpenAI), "
        "'conversations' (ShareGPT) or 'instruction' + 'output' (Alpaca)"
    )


def to_messages(record: Mapping[str, Any], form: str | None = None) -> list[Message]:
    """The conversation in `record`, in the named form or the one its keys show."""
    form = form or detect_form(record)
    if form == "openai":
        return _from_turns(record.get("messages"), "messages", "role", "content", _OPENAI_ROLES)
    if form == "sharegpt":
        return _from_turns(
            record.get("conversations"), "conversations", "from", "value", _SHAREGPT_ROLES
        )
    if form == "alpaca":
        return _from_alpaca(record)
    raise InputError(f"unknown conversation form {form!r}; use one of {', '.join(FORMS)}")


def _from_turns(
    turns: Any, field: str, role_key: str, text_key: str, roles: Mapping[str, str]
) -> list[Message]:
    if not isinstance(turns, list) or not turns:
        raise InputError(f"'{field}' must be a non-empty list of turns")
    messages = []
    for turn in turns:
        if not isinstance(turn, Mapping) or role_key not in turn or text_key not in turn:
            raise InputError(f"every turn of '{field}' needs '{role_key}' and '{text_key}'")
        role = roles.get(str(turn[role_key]).lower())
        if role is None:
            raise InputError(
                f"turn role {turn[role_key]!r} in '{field}' is not one of {', '.join(sorted(roles))}"
            )
        messages.append(Message(role, _text(turn[text_key])))
    return messages


def _from_alpaca(record: Mapping[str, Any]) -> list[Message]:
    instruction = _text(record.get("instruction"))
    extra = _text(record.get("input") or "")
    prompt = f"{instruction}\n\n{extra}" if extra else instruction
    return [Message("user", prompt), Message("assistant", _text(record.get("output")))]


def _text(value: Any) -> str:
    """Turn content as text: a string, or OpenAI's list of `{"type": "text", "text": ...}` parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(p, Mapping) and p.get("type") == "text" for p in value
    ):
        return "".join(str(p.get("text", "")) for p in value)
    raise InputError(f"turn content must be text (or a list of text parts), got {value!r:.80}")


def as_messages(items: Iterable[Mapping[str, Any] | Message]) -> list[Message]:
    """OpenAI-style dicts (or Messages) as validated Messages."""
    return [
        item if isinstance(item, Message) else to_messages({"messages": [item]}, "openai")[0]
        for item in items
    ]
