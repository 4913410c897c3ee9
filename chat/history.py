"""Keeping a multi-turn history inside the model's context window.

When the prompt of the next reply would not leave room for the reply itself, the oldest turns
go first, a whole turn at a time (a user message and the answers that followed it), so the model
never sees an answer without its question. The leading system messages and the newest message
always stay; when even those do not fit, the caller gets an error naming the sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from smelt.chat.messages import Message
from smelt.errors import InputError


def fit_to_context(
    messages: Sequence[Message], prompt_tokens: Callable[[list[Message]], int], budget: int
) -> tuple[list[Message], int]:
    """(the messages to send, how many were dropped) so that `prompt_tokens(sent) <= budget`."""
    system = 0
    while system < len(messages) and messages[system].role == "system":
        system += 1
    head, body = list(messages[:system]), list(messages[system:])
    dropped = 0
    while (size := prompt_tokens(head + body)) > budget:
        if len(body) <= 1:
            raise InputError(
                f"the newest message and the system prompt take {size} tokens, more than the "
                f"{budget} the context leaves before the reply; shorten them or allow fewer new "
                "tokens"
            )
        cut = 1  # the oldest message, and every non-user message after it up to the next user
        while cut < len(body) - 1 and body[cut].role != "user":
            cut += 1
        body, dropped = body[cut:], dropped + cut
    return head + body, dropped
