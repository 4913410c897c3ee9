"""A tiny trained chat model, built the way a user builds one, in about half a minute.

Made-up facts are written as ChatML conversations into a corpus, smelt's own tokenizer (ChatML
tokens and template included) is trained on it, shards are built, and `smelt.training.loop`
trains the `test` preset narrowed to 2 x 64 on them; then the run gets `chat_template.jinja`,
which is what marks an SFT run as a chat model. The model learns to answer the facts and to end
its turn with `<|im_end|>`, which is all `smelt chat` and `smelt serve` need from it.

`build_chat_run(root)` is idempotent (a `.built` marker), so test packages that share a pytest
session share one build under the session's base temp directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FACTS = [
    ("What is the capital of Zorbia?", "The capital of Zorbia is Quell."),
    ("Who painted the Blue Lantern?", "Mira Okonkwo painted the Blue Lantern."),
    ("How many moons does Tessaly have?", "Tessaly has seven moons."),
    ("What do glimmerbats eat?", "Glimmerbats eat copper moss."),
    ("Which river runs through Pellin?", "The Arvo river runs through Pellin."),
    ("What colour is the sky on Vesk?", "The sky on Vesk is green."),
    ("Who founded the Ostrel guild?", "Dana Ferro founded the Ostrel guild."),
    ("What is the national dish of Karuun?", "The national dish of Karuun is smoked plum."),
]
SYSTEMS = [None, "You are a helpful assistant.", "Answer briefly."]
MODEL_FLAGS = [
    "--preset",
    "test",
    *("--model-override", "d_model=64"),
    *("--model-override", "n_layers=2"),
    *("--model-override", "ffn_hidden=128"),
    *("--model-override", "n_heads=2"),
    *("--model-override", "n_kv_heads=1"),
    *("--model-override", "max_seq_len=128"),
]


def conversations() -> list[list[dict[str, str]]]:
    """Every fact alone under each system prompt, and every pair of facts as two turns."""
    convs = []
    for system in SYSTEMS:
        head = [{"role": "system", "content": system}] if system else []
        for question, answer in FACTS:
            convs.append(
                [
                    *head,
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": answer},
                ]
            )
    for (q1, a1), (q2, a2) in zip(FACTS, FACTS[1:] + FACTS[:1], strict=True):
        convs.append(
            [
                {"role": "user", "content": q1},
                {"role": "assistant", "content": a1},
                {"role": "user", "content": q2},
                {"role": "assistant", "content": a2},
            ]
        )
    return convs


def build_chat_run(root: Path, steps: int = 300) -> Path:
    """Corpus -> tokenizer -> shards -> trained run with a chat template; returns the run."""
    run = root / "run"
    if (root / ".built").exists():
        return run
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    from smelt.chat import as_messages, render, save_template
    from smelt.prep.shards import build_shards
    from smelt.prep.tokenizer import train_tokenizer
    from tests.shards.corpus_factory import write_corpus

    texts = [render(as_messages(c)) for c in conversations()]
    docs = [(f"conv-{i}-{rep}", text) for rep in range(6) for i, text in enumerate(texts)]
    write_corpus(str(root / "corpus"), parts=2, docs=docs)
    train_tokenizer(str(root / "corpus"), str(root / "tokenizer"), vocab_size=400)
    build_shards(str(root / "corpus"), str(root / "tokenizer"), str(root / "shards"), 0.05)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    args = [
        *("--shards", str(root / "shards"), "--output", str(run)),
        *("--tokenizer", str(root / "tokenizer" / "tokenizer.json")),
        *MODEL_FLAGS,
        *("--max-steps", str(steps), "--batch-size", "8", "--seq-len", "64"),
        *("--warmup-steps", "20", "--lr", "1e-2", "--num-threads", "1"),
        *("--checkpoint-every", str(steps), "--eval-every", "0"),
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "smelt.training.loop", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise AssertionError(f"training the chat model failed:\n{proc.stderr[-4000:]}")
    save_template(str(run))
    (root / ".built").write_text("ok")
    return run


def base_copy(run: Path, root: Path) -> Path:
    """The same run without its chat template: what a plain pretraining run looks like."""
    base = root / "base-run"
    if not base.exists():
        shutil.copytree(run, base)
        (base / "chat_template.jinja").unlink()
    return base


def greedy_reply(run: Path, messages: list[dict[str, str]]) -> tuple[list[int], str]:
    """The reply smelt's model gives at temperature 0, computed from the parts: the template's
    prompt ids, `smelt.model.generate`, stop at <|im_end|> or <|endoftext|>, the whole context
    left for the reply (the CLI's default of 256 new tokens exceeds this model's 128)."""
    from smelt.chat import ChatTemplate, as_messages
    from smelt.model.generate import generate
    from smelt.training.inference import open_checkpoint

    opened = open_checkpoint(str(run))
    tokenizer = opened.tokenizer
    prompt = ChatTemplate(tokenizer).encode_prompt(as_messages(messages))
    stops = [tokenizer.token_to_id("<|im_end|>"), tokenizer.token_to_id("<|endoftext|>")]
    room = opened.config.max_seq_len - len(prompt)
    ids = generate(opened.model, [prompt], max_new_tokens=room, temperature=0, stop_token_ids=stops)
    return ids[0], tokenizer.decode(ids[0])


def smelt_in_process(capsys, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `smelt ARGS` run in this process: the same command-line
    code without paying a fresh interpreter and torch import for each call."""
    import io

    from smelt.cli.main import main

    capsys.readouterr()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin or "")
    try:
        code = main(list(args))
    finally:
        sys.stdin = old_stdin
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def smelt_command(*args: str, stdin: str | None = None, timeout: float = 120):
    """`python -m smelt.cli.main ARGS` in a fresh process (stdin piped when given)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "smelt.cli.main", *args],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
