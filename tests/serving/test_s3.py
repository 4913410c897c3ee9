"""A chat run on S3 (moto over HTTP): found, fetched, recognised as a chat model by its
template, for the run URI and for one step URI alike."""

from __future__ import annotations

from smelt import storage
from smelt.serving import ChatSession, Settings, load_chat_model
from tests.chat.chat_run import greedy_reply


def test_a_chat_run_on_s3_answers_like_the_local_one(chat_run, s3_bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("SMELT_CACHE_DIR", str(tmp_path / "cache"))
    run_uri = f"{s3_bucket}/runs/sft"
    for path in chat_run.rglob("*"):
        if path.is_file() and "tb" not in path.relative_to(chat_run).parts:
            storage.put_file(str(path), storage.join(run_uri, str(path.relative_to(chat_run))))
    question = "Who painted the Blue Lantern?"
    expected = greedy_reply(chat_run, [{"role": "user", "content": question}])[1]
    step = next(p.name for p in chat_run.iterdir() if p.name.startswith("step_"))
    for uri in (run_uri, f"{run_uri}/{step}"):
        chat = load_chat_model(uri, "cpu")
        assert chat.is_chat and chat.name == "sft"
        assert "".join(ChatSession(chat, Settings(temperature=0)).send(question)) == expected
