"""A chat session keeps its history inside the context: whole turns, oldest first, the longest
suffix that fits; an interrupted reply keeps what was said."""

from __future__ import annotations

import pytest

from smelt.chat import Message
from smelt.errors import InputError
from smelt.serving import ChatSession, Settings, load_chat_model
from tests.chat.chat_run import FACTS


@pytest.fixture(scope="module")
def chat(chat_run):
    return load_chat_model(str(chat_run), "cpu")


def test_history_is_cut_from_the_oldest_turns(chat):
    settings = Settings(temperature=0, max_new_tokens=40)
    session = ChatSession(chat, settings, system="Answer briefly.")
    budget = chat.context - min(settings.max_new_tokens, chat.context // 2)
    said: list[Message] = []  # the whole conversation, as the user saw it
    drops = []
    for question, _ in FACTS:
        reply = session.send(question)
        text = "".join(reply)
        said.append(Message("user", question))
        turns = reply.kept[1:]  # after the system prompt, which always stays
        assert reply.kept[0] == Message("system", "Answer briefly.")
        assert turns == said[len(said) - len(turns) :] and turns[0].role == "user"
        assert reply.prompt == chat.chat_prompt(reply.kept)
        assert len(reply.prompt) <= budget
        if len(turns) < len(said):  # it was cut, and one more turn would not have fitted
            longer = [reply.kept[0], *said[len(said) - len(turns) - 2 :]]
            assert len(chat.chat_prompt(longer)) > budget
        assert len(reply.ids) <= min(settings.max_new_tokens, chat.context - len(reply.prompt))
        drops.append(reply.dropped)
        said.append(Message("assistant", text))
        assert session.history == [*turns, Message("assistant", text)]
    assert drops[0] == 0 and max(drops) > 0  # the first turns fitted, later ones did not


def test_an_interrupted_reply_stays_in_the_history(chat):
    session = ChatSession(chat, Settings(temperature=0))
    pieces = iter(session.send("What is the capital of Zorbia?"))
    first = next(pieces)
    pieces.close()  # Ctrl-C in the REPL
    assert session.history == [
        Message("user", "What is the capital of Zorbia?"),
        Message("assistant", first),
    ]


def test_settings_are_checked():
    with pytest.raises(InputError, match="at least 1"):
        Settings(max_new_tokens=0)
    with pytest.raises(InputError, match="top_p"):
        Settings().with_(top_p=1.5)


def test_a_message_longer_than_the_context_is_refused(chat):
    session = ChatSession(chat, Settings(temperature=0))
    with pytest.raises(InputError, match="newest message"):
        session.send("word " * 200)
