"""`smelt sft` end to end: the `sft` flow fine-tunes a base that knows no facts on made-up facts
(three files, three forms); afterwards `smelt chat --message` answers them, transformers
reproduces the replies of the exported run token for token, and `smelt serve` answers the
`openai` client with them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from smelt.cli.main import main
from smelt.training.metrics import read_metrics
from tests.chat.chat_run import FACTS, greedy_reply, smelt_command, smelt_in_process

pytestmark = pytest.mark.slow
STEPS = 300


def sft_args(base: Path, files: list[Path], output: Path, steps: int = STEPS) -> list[str]:
    return [
        *("sft", "--base", str(base)),
        *(arg for f in files for arg in ("--data", str(f))),
        *("--output", str(output), "--val-fraction", "0"),
        *("--max-steps", str(steps), "--batch-size", "4", "--seq-len", "128"),
        *("--warmup-steps", "10", "--lr", "3e-3", "--num-threads", "1"),
        *("--checkpoint-every", str(steps // 2), "--eval-every", "0", "--no-progress"),
    ]


@pytest.fixture(scope="module")
def sft_run(base_run, fact_files, tmp_path_factory, prefect_harness) -> Path:
    output = tmp_path_factory.mktemp("sft-cli") / "run"
    assert main(sft_args(base_run, fact_files, output)) == 0
    return output


def _question(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def test_sft_teaches_the_base_the_facts_through_smelt_chat(base_run, sft_run, capsys):
    before = [greedy_reply(base_run, _question(q))[1] for q, _ in FACTS]
    assert sum(b == a for b, (_, a) in zip(before, FACTS, strict=True)) == 0
    answered = []
    for question, answer in FACTS:
        code, out, err = smelt_in_process(
            capsys,
            "chat",
            "--checkpoint",
            str(sft_run),
            "--message",
            question,
            "--temperature",
            "0",
        )
        assert code == 0, err
        answered.append(out == answer + "\n")
    assert sum(answered) >= len(FACTS) - 1, answered
    question, answer = next(f for f, ok in zip(FACTS, answered, strict=True) if ok)
    proc = smelt_command(
        "chat", "--checkpoint", str(sft_run), "--message", question, "--temperature", "0"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == answer + "\n"


def test_the_run_is_a_chat_model_with_its_data_beside_it(base_run, sft_run, fact_files):
    assert (sft_run / "chat_template.jinja").exists()
    assert (sft_run / "tokenizer.json").read_bytes() == (base_run / "tokenizer.json").read_bytes()
    assert sorted(p.name for p in sft_run.glob("step_*")) == ["step_00000150", "step_00000300"]
    records = read_metrics(str(sft_run / "metrics.jsonl"))
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    assert records[-1]["loss"] < 0.2 < records[0]["loss"]
    record = json.loads((sft_run / "sft_data" / "conversations.json").read_text())
    assert record["records"] == 32 + 8 and record["kept"] == {"train": 40, "val": 0}
    assert {Path(i["uri"]).name: i["form"] for i in record["inputs"]} == {
        "facts.jsonl": "openai",
        "facts-sharegpt.parquet": "sharegpt",
        "facts-alpaca.json": "alpaca",
    }


def test_running_it_again_neither_retokenizes_nor_retrains(base_run, fact_files, sft_run, capsys):
    record = sft_run / "sft_data" / "conversations.json"
    stamp = record.stat().st_mtime_ns
    capsys.readouterr()
    assert main(sft_args(base_run, fact_files, sft_run)) == 0
    out = capsys.readouterr().out
    assert "is already trained to step 300" in out
    assert record.stat().st_mtime_ns == stamp


def test_sft_flow_publishes_what_it_kept_and_dropped(sft_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["sft-data"]))
        )
    mine = [a for a in artifacts if str(sft_run) in (a.description or "")]
    assert mine
    table = mine[0].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert {"outcome": "kept (train)", "conversations": 40} in rows


def test_transformers_reproduces_smelt_chat_on_the_export(sft_run, tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path / "hf"
    assert main(["export-hf", "--checkpoint", str(sft_run), "--output", str(folder)]) == 0
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for question, _ in FACTS[:4]:
        messages = [{"role": "system", "content": "Answer briefly."}, *_question(question)]
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        prompt_len = inputs["input_ids"].shape[1]
        with torch.no_grad():
            out = model.generate(
                **inputs, do_sample=False, max_new_tokens=128 - prompt_len, pad_token_id=3
            )
        theirs = out[0, prompt_len:].tolist()
        ours, text = greedy_reply(sft_run, messages)
        assert theirs[-1] == end_of_turn and theirs[:-1] == ours
        _, printed, _ = smelt_in_process(
            capsys,
            *("chat", "--checkpoint", str(sft_run), "--temperature", "0"),
            *("--system", "Answer briefly.", "--message", question),
        )
        assert printed == text + "\n" == tokenizer.decode(theirs, skip_special_tokens=True) + "\n"


def test_smelt_serve_answers_the_openai_client(sft_run):
    import openai

    from tests.serving.conftest import Served

    served = Served(sft_run)
    try:
        client = openai.OpenAI(base_url=f"{served.url}/v1", api_key="unused", max_retries=0)
        question = FACTS[5][0]
        reply = client.chat.completions.create(
            model=sft_run.name, messages=_question(question), temperature=0
        )
        expected = greedy_reply(sft_run, _question(question))[1]
        assert reply.choices[0].message.content == expected
        assert reply.choices[0].finish_reason == "stop"
        stream = client.chat.completions.create(
            model=sft_run.name, messages=_question(question), temperature=0, stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected
    finally:
        served.stop()
