"""`smelt serve` answers the official `openai` client: chat and completions, streaming and not,
concurrent clients batched without changing a token; OpenAI-style errors; a client that leaves
mid-stream frees its row."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from smelt.model.generate import generate
from smelt.serving import Engine, load_chat_model
from smelt.serving.api import create_app
from smelt.training.inference import open_checkpoint
from tests.chat.chat_run import FACTS, base_copy, greedy_reply

QUESTION = "What is the capital of Zorbia?"


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def opened(chat_run):
    return open_checkpoint(str(chat_run))


def _continuation(opened, prompt: list[int], max_new: int, stops: list[str]) -> list[int]:
    stop_ids = [opened.tokenizer.token_to_id(s) for s in stops]
    return generate(
        opened.model, [prompt], max_new_tokens=max_new, temperature=0, stop_token_ids=stop_ids
    )[0]


def test_models_lists_the_served_run(client):
    models = client.models.list().data
    assert [m.id for m in models] == ["run"]
    assert models[0].model_extra["max_model_len"] == 128 and models[0].model_extra["chat"]


def test_chat_completion_streaming_and_not_equals_smelt_chat(client, chat_run):
    messages = [{"role": "user", "content": QUESTION}]
    ids, text = greedy_reply(chat_run, messages)
    reply = client.chat.completions.create(model="run", messages=messages, temperature=0)
    assert reply.choices[0].message.content == text == "The capital of Zorbia is Quell."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens == len(ids)
    chunks = list(
        client.chat.completions.create(
            model="run",
            messages=messages,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert "".join(pieces) == text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == len(ids)
    # a longer reply arrives in pieces while it is generated, not all at once at the end
    long = client.chat.completions.create(
        model="run",
        messages=messages,
        max_tokens=80,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    assert sum(1 for c in long if c.choices and c.choices[0].delta.content) > 1


def test_completions_continue_text(client, opened):
    prompt = "The capital of"
    reply = client.completions.create(model="run", prompt=prompt, max_tokens=12, temperature=0)
    ids = opened.tokenizer.encode(prompt).ids
    expected = _continuation(opened, ids, 12, ["<|endoftext|>", "<|im_end|>"])
    assert reply.choices[0].text == opened.tokenizer.decode(expected)
    streamed = client.completions.create(
        model="run", prompt=ids, max_tokens=12, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == reply.choices[0].text


def test_a_stop_string_ends_the_reply_before_it(client):
    reply = client.chat.completions.create(
        model="run", messages=[{"role": "user", "content": QUESTION}], temperature=0, stop=["Qu"]
    )
    assert reply.choices[0].message.content == "The capital of Zorbia is "
    assert reply.choices[0].finish_reason == "stop"


def test_concurrent_clients_are_batched_and_get_their_own_replies(client, server, opened, chat_run):
    from smelt.chat import ChatTemplate, Message

    template = ChatTemplate(opened.tokenizer)
    questions = [q for q, _ in FACTS]

    def ask(question: str) -> str:
        reply = client.chat.completions.create(
            model="run",
            messages=[{"role": "user", "content": question}],
            temperature=0,
            max_tokens=48,
            extra_body={"ignore_eos": True},  # fixed length, so the requests overlap
        )
        return reply.choices[0].message.content

    with ThreadPoolExecutor(len(questions)) as pool:
        replies = list(pool.map(ask, questions))
    for question, reply in zip(questions, replies, strict=True):
        prompt = template.encode_prompt([Message("user", question)])
        expected = _continuation(opened, prompt, 48, [])
        assert reply == opened.tokenizer.decode(expected)
    assert server.health()["peak_batch"] >= 2


@pytest.mark.parametrize(
    ("request_args", "status", "param", "code"),
    [
        ({"model": "gpt-4o"}, 404, "model", "model_not_found"),
        ({"max_tokens": -1}, 400, "max_tokens", None),
        (
            {"messages": [{"role": "user", "content": "word " * 200}]},
            400,
            "messages",
            "context_length_exceeded",
        ),
        ({"max_tokens": 500}, 400, "messages", "context_length_exceeded"),
        ({"n": 2}, 400, "n", None),
        ({"messages": [{"role": "tool", "content": "x"}]}, 400, "messages", None),
        ({"messages": []}, 400, "messages", None),
        ({"temperature": 3}, 400, "temperature", None),
    ],
)
def test_bad_requests_get_openai_errors(client, request_args, status, param, code):
    args = {"model": "run", "messages": [{"role": "user", "content": QUESTION}], **request_args}
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(**args)
    error = caught.value
    assert error.status_code == status
    assert error.body["type"] == "invalid_request_error" and error.body["message"]
    assert (error.body["param"], error.body["code"]) == (param, code)


def test_malformed_json_and_unknown_paths_get_openai_errors(server):
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=b'{"model": "run", "messages": [',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "could not parse the JSON body" in response.json()["error"]["message"]
    response = httpx.get(f"{server.url}/v1/models/other")
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"
    assert httpx.get(f"{server.url}/v2/nothing").json()["error"]["message"] == "Not Found"


def test_a_client_leaving_mid_stream_frees_its_row(server):
    before = server.health()
    body = {
        "model": "run",
        "messages": [{"role": "user", "content": QUESTION}],
        "stream": True,
        "max_tokens": 100,
        "ignore_eos": True,
    }
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body) as response:
        received = 0
        for line in response.iter_lines():
            received += line.startswith("data:")
            if received == 3:
                break
    deadline = time.monotonic() + 20
    health = server.health()
    while health["cancelled"] == before["cancelled"] and time.monotonic() < deadline:
        time.sleep(0.1)
        health = server.health()
    assert health["cancelled"] == before["cancelled"] + 1
    assert health["active"] == 0 and health["completed"] == before["completed"]
    assert health["generated_tokens"] - before["generated_tokens"] < 100


def test_a_base_model_serves_completions_only(chat_run, tmp_path_factory, opened):
    base = base_copy(chat_run, tmp_path_factory.getbasetemp())
    chat = load_chat_model(str(base), "cpu")
    with TestClient(create_app(chat, Engine(chat.model))) as http:
        card = http.get("/v1/models").json()["data"][0]
        assert card["id"] == "base-run" and card["chat"] is False
        refused = http.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "model_not_chat"
        done = http.post(
            "/v1/completions", json={"prompt": "The capital of", "max_tokens": 8, "temperature": 0}
        ).json()
    ids = opened.tokenizer.encode("The capital of").ids
    expected = _continuation(opened, ids, 8, ["<|endoftext|>"])
    assert done["choices"][0]["text"] == opened.tokenizer.decode(expected)
