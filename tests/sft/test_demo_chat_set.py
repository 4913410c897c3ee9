"""The demo's chat set: questions made from a corpus, answered with the corpus's own text, in
the OpenAI form fine-tuning reads."""

from __future__ import annotations

from smelt.chat import to_messages
from smelt.cli.demo import corpus_questions
from tests.shards.corpus_factory import documents, write_corpus


def test_questions_made_from_the_corpus_are_conversations(tmp_path):
    write_corpus(str(tmp_path / "corpus"), parts=2, limit=300)
    conversations = corpus_questions(str(tmp_path / "corpus"), limit=50)
    assert len(conversations) == 50
    corpus_text = " ".join(" ".join(text.split()) for _, text in documents(300))
    for record in conversations:
        question, answer = to_messages(record, "openai")
        assert question.role == "user" and answer.role == "assistant"
        assert question.content.endswith(("?", "."))
        assert " ".join(answer.content.split()) in corpus_text
