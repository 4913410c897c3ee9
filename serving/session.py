"""A conversation with one model, turn by turn: what `smelt chat` (REPL and --message) runs.

A chat model gets the system prompt, the history and the new message rendered with its chat
template, and stops at `<|im_end|>`. When that prompt would not leave room for the reply, the
oldest turns are dropped (smelt.chat.fit_to_context) and stay dropped. The room kept for the
reply is `max_new_tokens`, but never more than half the context, so a long `/max` on a short
context still leaves history; the reply then gets whatever the context has left, up to
`max_new_tokens`.

A base model (a run without a chat template) has no turns: each message is plain text to
continue, with no history and no system prompt.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from smelt.chat import Message, TextStream, fit_to_context
from smelt.errors import InputError
from smelt.model.generate import check_settings, stream
from smelt.serving.chat_model import ChatModel


@dataclass(frozen=True)
class Settings:
    """Sampling settings of a session (the REPL's /temp /topk /topp /rep /max)."""

    temperature: float = 0.7
    top_k: int | None = None  # None: off
    top_p: float | None = 0.9  # None: off
    repetition_penalty: float = 1.0
    max_new_tokens: int = 256
    seed: int | None = None

    def __post_init__(self) -> None:
        check_settings(
            self.temperature, self.top_k, self.top_p, self.repetition_penalty, self.max_new_tokens
        )
        if self.max_new_tokens < 1:
            raise InputError(f"max new tokens must be at least 1, got {self.max_new_tokens}")

    def with_(self, **changes: object) -> Settings:
        """A copy with `changes`; InputError when one is out of range."""
        return replace(self, **changes)


@dataclass
class Reply:
    """One reply being generated; iterate it for text pieces. The turn joins the history when
    the iteration ends, also when it is interrupted (with the text produced so far)."""

    session: ChatSession
    message: str
    prompt: list[int]
    kept: list[Message]  # the history that fitted, system messages first
    dropped: int  # messages dropped from the front of the history to fit
    max_new_tokens: int
    ids: list[int] = field(default_factory=list)  # the reply's token ids
    text: str = ""

    def __iter__(self) -> Iterator[str]:
        chat = self.session.chat
        settings = self.session.settings
        generator = None
        if settings.seed is not None and settings.temperature > 0:
            import torch

            generator = torch.Generator(device=chat.model.embed.weight.device)
            generator.manual_seed(settings.seed)
        pieces = TextStream(chat.tokenizer)
        try:
            for token in stream(
                chat.model,
                self.prompt,
                max_new_tokens=self.max_new_tokens,
                temperature=settings.temperature,
                top_k=settings.top_k,
                top_p=settings.top_p,
                repetition_penalty=settings.repetition_penalty,
                stop_token_ids=chat.stop_ids(chat.is_chat),
                generator=generator,
            ):
                self.ids.append(token)
                if piece := pieces.push(token):
                    yield piece
            if tail := pieces.finish():
                yield tail
        finally:
            pieces.finish()
            self.text = pieces.text
            self.session._record(self)


class ChatSession:
    """History, system prompt and settings of one conversation."""

    def __init__(
        self, chat: ChatModel, settings: Settings | None = None, system: str | None = None
    ):
        self.chat = chat
        self.settings = settings or Settings()
        self.system = system or None
        self.history: list[Message] = []  # user and assistant turns, oldest first

    def clear(self) -> None:
        self.history = []

    def send(self, message: str) -> Reply:
        """Prepare the reply to `message` (InputError when it cannot fit the context)."""
        context = self.chat.context
        if not self.chat.is_chat:
            prompt = self.chat.text_prompt(message)
            return Reply(self, message, prompt, [], 0, self._room(len(prompt)))
        head = [Message("system", self.system)] if self.system else []
        messages = [*head, *self.history, Message("user", message)]
        reserve = min(self.settings.max_new_tokens, context // 2)
        kept, dropped = fit_to_context(
            messages, lambda m: len(self.chat.chat_prompt(m)), context - reserve
        )
        prompt = self.chat.chat_prompt(kept)
        return Reply(self, message, prompt, kept, dropped, self._room(len(prompt)))

    def _room(self, prompt_tokens: int) -> int:
        room = min(self.settings.max_new_tokens, self.chat.context - prompt_tokens)
        if room < 1:
            raise InputError(
                f"the prompt takes {prompt_tokens} tokens, the whole context of "
                f"{self.chat.context}; send a shorter message"
            )
        return room

    def _record(self, reply: Reply) -> None:
        if not self.chat.is_chat:
            return
        turns = [m for m in reply.kept if m.role != "system"]
        self.history = [*turns, Message("assistant", reply.text)]
