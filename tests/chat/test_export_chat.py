"""`export-hf` of a chat run: transformers' apply_chat_template + greedy generate reproduce
`smelt chat --temperature 0` token for token; a base run exports no template."""

from __future__ import annotations

import json

import pytest
import torch

from smelt.cli.main import main
from tests.chat.chat_run import base_copy, greedy_reply, smelt_in_process

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of Zorbia?"}],
    [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "How many moons does Tessaly have?"},
    ],
    [
        {"role": "user", "content": "What do glimmerbats eat?"},
        {"role": "assistant", "content": "Glimmerbats eat copper moss."},
        {"role": "user", "content": "Which river runs through Pellin?"},
    ],
    [{"role": "user", "content": "Tell me something you were never taught, in detail."}],
]


pytestmark = pytest.mark.slow  # a fine-tuned model, exported and run in transformers


@pytest.fixture(scope="module")
def exported(chat_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf-chat")
    assert main(["export-hf", "--checkpoint", str(chat_run), "--output", str(folder)]) == 0
    return folder


def test_transformers_reproduces_smelt_chat_token_for_token(chat_run, exported, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(exported)
    model = AutoModelForCausalLM.from_pretrained(exported).eval()
    context = model.config.max_position_embeddings
    for messages in CONVERSATIONS:
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        prompt_len = inputs["input_ids"].shape[1]
        with torch.no_grad():
            out = model.generate(
                **inputs, do_sample=False, max_new_tokens=context - prompt_len, pad_token_id=3
            )
        theirs = out[0, prompt_len:].tolist()
        ours, text = greedy_reply(chat_run, messages)
        stopped = theirs and theirs[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")
        assert (theirs[:-1] if stopped else theirs) == ours, messages
        assert tokenizer.decode(theirs, skip_special_tokens=True) == text
    # and the command line prints that same text
    _, out, _ = smelt_in_process(
        capsys,
        "chat",
        *("--checkpoint", str(chat_run), "--temperature", "0"),
        *("--message", CONVERSATIONS[1][1]["content"], "--system", CONVERSATIONS[1][0]["content"]),
    )
    assert out == greedy_reply(chat_run, CONVERSATIONS[1])[1] + "\n"


def test_chat_export_names_the_end_of_turn(exported, tokenizer):
    from smelt.chat import CHAT_TEMPLATE

    config = json.loads((exported / "tokenizer_config.json").read_text())
    assert config["eos_token"] == "<|im_end|>"
    assert config["chat_template"] == CHAT_TEMPLATE
    end_of_turn, end_of_text = (tokenizer.token_to_id(t) for t in ("<|im_end|>", "<|endoftext|>"))
    generation = json.loads((exported / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [end_of_turn, end_of_text]
    assert json.loads((exported / "config.json").read_text())["eos_token_id"] == end_of_turn


def test_base_run_exports_without_a_chat_template(chat_run, tmp_path_factory):
    base = base_copy(chat_run, tmp_path_factory.getbasetemp())
    folder = tmp_path_factory.mktemp("hf-base")
    assert main(["export-hf", "--checkpoint", str(base), "--output", str(folder)]) == 0
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert "chat_template" not in config and config["eos_token"] == "<|endoftext|>"
    assert not (folder / "generation_config.json").exists()
