"""A checkpoint opened for conversation: model, tokenizer, chat template (or none), stop tokens.

A run is a chat model when its folder holds `chat_template.jinja` beside `tokenizer.json` (SFT
writes it; see smelt.chat.template). Any other run is a base model: `smelt chat` and the web
page then continue plain text, and the chat API refuses conversations rather than render
ChatML the model never learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from smelt import storage
from smelt.chat import END_OF_TURN, ChatTemplate, Message, load_template
from smelt.errors import InputError
from smelt.prep.specials import EOS
from smelt.training import checkpoint
from smelt.training.inference import OpenedCheckpoint, open_checkpoint


def run_folder(uri: str) -> str:
    """The run that `--checkpoint URI` names: the URI itself, or the parent of a step."""
    uri = storage.normalize(uri)
    return storage.parent(uri) if checkpoint.StepLayout(uri).marker.done() else uri


def run_chat_template(uri: str) -> str | None:
    """The chat template of the run behind `uri`, or None for a base model."""
    return load_template(run_folder(uri))


def pick_device(name: str = "auto") -> torch.device:
    """'auto': the GPU when there is one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


@dataclass
class ChatModel:
    """What `smelt chat` and `smelt serve` talk to."""

    opened: OpenedCheckpoint
    template: ChatTemplate | None  # None: a base model, plain continuation only
    name: str  # the model id the API reports

    @property
    def model(self) -> torch.nn.Module:
        return self.opened.model

    @property
    def tokenizer(self):  # noqa: ANN201 - tokenizers.Tokenizer
        return self.opened.tokenizer

    @property
    def is_chat(self) -> bool:
        return self.template is not None

    @property
    def context(self) -> int:
        """The most tokens (prompt + reply) the model can attend over."""
        return self.opened.config.max_seq_len

    @property
    def eos_id(self) -> int | None:
        return self.tokenizer.token_to_id(EOS)

    def stop_ids(self, chat: bool) -> list[int]:
        """Tokens that end a reply: end-of-text, and end-of-turn for a chat reply."""
        ids = [self.eos_id]
        if chat:
            ids.append(self.tokenizer.token_to_id(END_OF_TURN))
        return [i for i in ids if i is not None]

    def chat_prompt(self, messages: Sequence[Message]) -> list[int]:
        """Ids of `messages` followed by the assistant's turn opener."""
        if self.template is None:
            raise InputError(
                f"{self.name} is a base model (its run has no chat template): send plain text "
                "to complete, or fine-tune it with `smelt sft` first"
            )
        return self.template.encode_prompt(messages)

    def text_prompt(self, text: str) -> list[int]:
        """Ids of plain text to continue."""
        ids = self.tokenizer.encode(text).ids
        if not ids:
            raise InputError("the prompt encodes to no tokens; give some text")
        return ids


def load_chat_model(uri: str, device: str = "auto", name: str | None = None) -> ChatModel:
    """Open the checkpoint at `uri` (a run or one step, local or S3) for chatting."""
    opened = open_checkpoint(uri, pick_device(device))
    tokenizer = opened.require_tokenizer()
    source = run_chat_template(uri)
    template = ChatTemplate(tokenizer, source) if source is not None else None
    return ChatModel(opened, template, name or storage.basename(run_folder(uri)) or "smelt")
