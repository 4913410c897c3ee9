"""Streaming token ids to text: never half a character, never a stop string.

Byte-level BPE splits a multi-byte character over several tokens, so text is shown only once
the decoded tail is whole (no U+FFFD at the end). With stop strings (OpenAI's `stop`), the text
that could still turn into one is held back until it cannot; the first match ends the text
before the stop string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

REPLACEMENT = "\ufffd"


class TextStream:
    """Push token ids, get the new text each one makes safe to show."""

    def __init__(self, tokenizer: Any, stop: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.ids: list[int] = []
        self.text = ""  # everything shown so far
        self.stopped = False  # a stop string was found: nothing more will be shown

    def push(self, token_id: int) -> str:
        """The text that `token_id` completes (possibly empty)."""
        if self.stopped:
            return ""
        self.ids.append(int(token_id))
        decoded = self.tokenizer.decode(self.ids)
        if decoded.endswith(REPLACEMENT):  # an unfinished character: wait for its other bytes
            return ""
        return self._show(decoded, final=False)

    def finish(self) -> str:
        """The rest of the text once generation ended (held-back text, a broken character)."""
        if self.stopped:
            return ""
        return self._show(self.tokenizer.decode(self.ids), final=True)

    def _show(self, decoded: str, final: bool) -> str:
        start = max(0, len(self.text) - max((len(s) for s in self.stop), default=0))
        hits = [i for i in (decoded.find(s, start) for s in self.stop) if i >= 0]
        if hits:
            self.stopped = True
            safe = min(hits)
        elif final:
            safe = len(decoded)
        else:
            safe = len(decoded) - _held_back(decoded, self.stop)
        delta = decoded[len(self.text) : safe]
        self.text += delta
        return delta


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of `text` that begins one of `stops`."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if stop.startswith(text[-n:]):
                longest = n
                break
    return longest
