"""`smelt demo`: the whole pipeline on a sample of real text already on this machine.

The demo is a list of steps (`STEPS`), each a function of the shared `DemoContext`: a sample of
real text, the corpus build, then the very `smelt` commands a user would type (tokenizer, shards,
train, generate, eval, and at the end a short fine-tuning on questions made from the corpus
and one chat exchange), echoed as they run. Everything lands under `--workdir` (default
`./smelt-data`) on local storage, with Prefect's ephemeral server; each step is a flow run that
`make ui` shows afterwards.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

# The demo's embedded defaults. PII runs the pattern recognizers only (spaCy NER is ~3x
# slower). The sample is software documentation, not web prose, so the filters use the `docs`
# profile (corpus/config.py `PROFILES`: code listings, headings and templated API prose are
# normal there) instead of the web rules that drop most of it.
DEMO_VAL_FRACTION = 0.02  # the documents the shards hold out: the evaluation's text
DEMO_CORPUS_OVERRIDES: dict[str, Any] = {
    "pii": {"ner": False},
    "filters": {"profile": "docs"},
}


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="run the pipeline on a local sample, no download")
    demo.add_argument(
        "--workdir", default="./smelt-data", metavar="DIR", help="where every output goes"
    )
    demo.add_argument("--max-docs", type=int, default=3000, help="size of the sample corpus")
    demo.add_argument("--train-steps", type=int, default=300, help="training steps")
    demo.add_argument("--vocab-size", type=int, default=8192, help="tokenizer vocabulary")
    demo.add_argument(
        "--prompt", default="The Python interpreter", help="prompt of the closing sample"
    )
    demo.add_argument(
        "--sft-steps", type=int, default=None, help="fine-tuning steps (default: --train-steps / 3)"
    )
    demo.set_defaults(handler=run_demo)


@dataclass
class DemoContext:
    """What the steps share: arguments, paths, and each step's results by name."""

    args: argparse.Namespace
    console: Console
    workdir: Path
    results: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # label -> path, printed at the end

    @property
    def raw_dir(self) -> Path:
        return self.workdir / "raw"

    @property
    def corpus_dir(self) -> Path:
        return self.workdir / "corpus"

    @property
    def tokenizer_dir(self) -> Path:
        return self.workdir / "tokenizer"

    @property
    def shards_dir(self) -> Path:
        return self.workdir / "shards"

    @property
    def run_dir(self) -> Path:
        return self.workdir / "runs" / "demo"

    @property
    def chat_data(self) -> Path:
        return self.workdir / "chat" / "questions.jsonl"

    @property
    def sft_dir(self) -> Path:
        return self.workdir / "runs" / "demo-sft"


def step_sample(ctx: DemoContext) -> None:
    """Write a sample of real documents found on this machine under WORKDIR/raw."""
    from smelt.corpus.sample import build_sample

    staging = ctx.workdir / ".raw-new"
    shutil.rmtree(staging, ignore_errors=True)
    summary = build_sample(str(staging), ctx.args.max_docs)
    if same_files(staging, ctx.raw_dir):  # keep the files and their times: the corpus resumes
        shutil.rmtree(staging)
    else:
        shutil.rmtree(ctx.raw_dir, ignore_errors=True)
        staging.rename(ctx.raw_dir)
    table = Table(title=f"sample: {summary.total:,} documents", header_style="bold")
    table.add_column("kind")
    table.add_column("documents", justify="right")
    for kind, count in sorted(summary.counts.items()):
        table.add_row(kind, f"{count:,}")
    ctx.console.print(table)
    ctx.results["sample"] = summary
    ctx.outputs["raw input"] = str(ctx.raw_dir)


def same_files(a: Path, b: Path) -> bool:
    """Whether two directory trees hold the same files with the same bytes."""
    import filecmp

    if not b.is_dir():
        return False
    names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    if names != sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()):
        return False
    return all(filecmp.cmp(a / name, b / name, shallow=False) for name in names)


def step_corpus(ctx: DemoContext) -> None:
    """Build the clean corpus from the sample (resumes when rerun on the same sample)."""
    from smelt.cli.corpus import build_corpus, print_report
    from smelt.corpus.partition import PlanMismatchError
    from smelt.flows.corpus_build import CorpusBuildParams

    params = CorpusBuildParams(
        inputs=[str(ctx.raw_dir)],
        output=str(ctx.corpus_dir),
        config_overrides=DEMO_CORPUS_OVERRIDES,
    )
    try:
        summary = build_corpus(params, ctx.console)
    except PlanMismatchError:  # the sample changed (another --max-docs): rebuild the demo corpus
        shutil.rmtree(ctx.corpus_dir)
        summary = build_corpus(params, ctx.console)
    print_report(ctx.console, str(ctx.corpus_dir), summary, title=f"corpus {ctx.corpus_dir}")
    ctx.results["corpus"] = summary
    ctx.outputs["corpus"] = str(ctx.corpus_dir / "data")
    ctx.outputs["quarantine"] = str(ctx.corpus_dir / "quarantine")
    ctx.outputs["filtered samples"] = f"smelt corpus inspect {ctx.corpus_dir} --reason REASON"
    ctx.outputs["stats"] = str(ctx.corpus_dir / "stats.json")


def run_command(ctx: DemoContext, *argv: str) -> None:
    """Run one `smelt` command exactly as a user would type it, echoing it first.

    Errors and Ctrl-C propagate to the demo's own command line (one `error:` or stop line)."""
    from smelt.cli.main import run
    from smelt.errors import SmeltError

    ctx.console.print(f"[bold cyan]$ smelt {' '.join(argv)}[/]")
    code = run(list(argv))
    if code != 0:
        raise SmeltError(f"demo step `smelt {argv[0]}` failed with exit code {code}")


def step_tokenizer(ctx: DemoContext) -> None:
    """Train the BPE tokenizer on the corpus; downstream outputs start fresh with it."""
    for stale in (ctx.tokenizer_dir, ctx.shards_dir, ctx.run_dir, ctx.sft_dir):
        shutil.rmtree(stale, ignore_errors=True)
    run_command(
        ctx,
        "tokenizer",
        "train",
        "--corpus",
        str(ctx.corpus_dir),
        "--output",
        str(ctx.tokenizer_dir),
        "--vocab-size",
        str(ctx.args.vocab_size),
    )
    from smelt.prep.layout import TokenizerLayout

    ctx.outputs["tokenizer"] = TokenizerLayout.at(str(ctx.tokenizer_dir)).tokenizer


def step_shards(ctx: DemoContext) -> None:
    """Tokenize the corpus into uint32 train/val shards, then verify them."""
    run_command(
        ctx,
        "shards",
        "build",
        "--corpus",
        str(ctx.corpus_dir),
        "--tokenizer",
        str(ctx.tokenizer_dir),
        "--output",
        str(ctx.shards_dir),
        "--val-fraction",
        str(DEMO_VAL_FRACTION),
    )
    run_command(ctx, "shards", "verify", str(ctx.shards_dir))
    from smelt.prep.layout import ShardsLayout

    ctx.outputs["shards"] = ShardsLayout.at(str(ctx.shards_dir)).manifest


def step_train(ctx: DemoContext) -> None:
    """Train the `test` preset for a few hundred CPU steps, checkpointing as it goes."""
    run_command(
        ctx,
        "train",
        "--shards",
        str(ctx.shards_dir),
        "--output",
        str(ctx.run_dir),
        "--preset",
        "test",
        "--max-steps",
        str(ctx.args.train_steps),
        "--batch-size",
        "4",
        "--seq-len",
        "64",
        "--checkpoint-every",
        str(max(1, ctx.args.train_steps // 3)),
    )
    from smelt.training.checkpoint import RunLayout

    ctx.outputs["checkpoints"] = str(ctx.run_dir)
    ctx.outputs["metrics"] = RunLayout(str(ctx.run_dir)).metrics


def step_generate(ctx: DemoContext) -> None:
    """Stream a sample from the newest checkpoint."""
    run_command(
        ctx,
        "generate",
        "--checkpoint",
        str(ctx.run_dir),
        "--prompt",
        ctx.args.prompt,
        "--max-new-tokens",
        "48",
        "--temperature",
        "0.8",
        "--top-k",
        "40",
        "--seed",
        "0",
    )


def step_evaluate(ctx: DemoContext) -> None:
    """Score the demo model: val loss, bits per byte on held-out documents, and a next-words
    quiz built from them (the documents the shards held out, so training never saw them).

    A small sample may hold out no document, or none with a sentence long enough for the quiz
    (which documents are held out follows their ids): that part is left out, and said so."""
    import json

    from smelt.evaluation.heldout import held_out_texts, next_words_quiz

    folder = ctx.workdir / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    texts = held_out_texts(str(ctx.corpus_dir), DEMO_VAL_FRACTION)
    rows = next_words_quiz(texts)
    heldout, quiz = folder / "heldout.jsonl", folder / "quiz.jsonl"
    inputs: list[str] = []
    if rows:
        quiz.write_text("".join(json.dumps(row) + "\n" for row in rows))
        inputs += ["--task", f"next_words={quiz}"]
    if texts:
        heldout.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        inputs += ["--text", f"heldout={heldout}"]
    if not rows:
        ctx.console.print(
            f"[yellow]{len(texts)} held-out documents, no sentence long enough for the "
            "next-words quiz: it is left out (a larger --max-docs holds out more)[/]"
        )
    run_command(
        ctx,
        "eval",
        "--checkpoint",
        str(ctx.run_dir),
        *inputs,
        "--output",
        str(folder / "demo.json"),
    )
    ctx.outputs["evaluation"] = str(folder / "demo.json")


def step_sft(ctx: DemoContext) -> None:
    """Fine-tune the run on questions made from the corpus (its titles and first sentences)."""
    from smelt.errors import InputError

    conversations = corpus_questions(str(ctx.corpus_dir))
    if not conversations:
        raise InputError(
            f"the corpus {ctx.corpus_dir} gave no questions to fine-tune on; raise --max-docs"
        )
    ctx.chat_data.parent.mkdir(parents=True, exist_ok=True)
    ctx.chat_data.write_text("".join(json.dumps(c) + "\n" for c in conversations))
    ctx.console.print(f"{len(conversations)} conversations made from the corpus: {ctx.chat_data}")
    ctx.results["chat_question"] = conversations[0]["messages"][0]["content"]
    steps = ctx.args.sft_steps or max(10, ctx.args.train_steps // 3)
    run_command(
        ctx,
        *("sft", "--base", str(ctx.run_dir), "--data", str(ctx.chat_data)),
        *("--output", str(ctx.sft_dir), "--max-steps", str(steps)),
        *("--batch-size", "4", "--seq-len", "128", "--lr", "1e-3"),
        *("--checkpoint-every", str(steps), "--eval-every", str(steps)),
    )
    ctx.outputs["chat data"] = str(ctx.chat_data)
    ctx.outputs["fine-tuned"] = str(ctx.sft_dir)


def step_chat(ctx: DemoContext) -> None:
    """One exchange with the fine-tuned model, as a script would have it."""
    run_command(
        ctx,
        *("chat", "--checkpoint", str(ctx.sft_dir)),
        *("--message", ctx.results["chat_question"], "--temperature", "0"),
        *("--max-new-tokens", "48"),
    )


def corpus_questions(corpus_uri: str, limit: int = 400) -> list[dict[str, Any]]:
    """OpenAI-form conversations made from the corpus: for a document that opens with a short
    title, "what is TITLE about?" answered with its first sentence; for any document of some
    length, "how does the text that starts with ... go on?" answered with its next words."""
    from smelt import storage
    from smelt.corpus.layout import CorpusLayout
    from smelt.corpus.tables import iter_rows

    conversations: list[dict[str, Any]] = []
    data = CorpusLayout.at(corpus_uri).data_dir
    for part in storage.list_files(data, suffixes=[".parquet"]):
        for (text,) in iter_rows(part, ["text"]):
            for question, answer in _questions(text, len(conversations)):
                conversations.append(
                    {
                        "messages": [
                            {"role": "user", "content": question},
                            {"role": "assistant", "content": answer},
                        ]
                    }
                )
            if len(conversations) >= limit:
                return conversations[:limit]
    return conversations


def _questions(text: str, made: int) -> list[tuple[str, str]]:
    asks = ("What is {} about?", "Tell me about {}.", "Summarize {} in one sentence.")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    pairs = []
    title = lines[0].strip("#=*-_ `") if lines else ""
    body = " ".join(lines[1:])
    end = body.find(". ")
    sentence = body[: end + 1]
    if (
        3 <= len(title) <= 60
        and len(title.split()) <= 8
        and all(c.isalnum() or c in " -'’:" for c in title)
        and 0 < end < 200
        and len(sentence.split()) >= 5
    ):
        pairs.append((asks[made % len(asks)].format(title), sentence))
    words = text.split()
    if len(words) >= 30:
        start = " ".join(words[:8])
        pairs.append(
            (f"How does the text that starts with “{start}” go on?", " ".join(words[8:28]))
        )
    return pairs


STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("sample", step_sample),
    ("corpus", step_corpus),
    ("tokenizer", step_tokenizer),
    ("shards", step_shards),
    ("train", step_train),
    ("generate", step_generate),
    ("evaluate", step_evaluate),
    ("sft", step_sft),
    ("chat", step_chat),
]


def run_demo(args: argparse.Namespace) -> int:
    from smelt.cli import api, stopping

    api.prepare()  # one Prefect server for every step, started while the sample is written
    console = Console()
    ctx = DemoContext(args=args, console=console, workdir=Path(args.workdir).resolve())
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    finished: list[str] = []
    for name, step in STEPS:
        console.rule(f"[bold]{name}")
        step_started = time.monotonic()
        stopping.report_progress(
            lambda name=name: (
                f"demo stopped in step {name} (finished: "
                f"{', '.join(finished) or 'none'}); `smelt demo` again keeps the corpus built so far"
            )
        )
        step(ctx)
        finished.append(name)
        console.print(f"[dim]{name}: {time.monotonic() - step_started:.1f} s[/]")
    table = Table(
        title=f"smelt demo: done in {time.monotonic() - started:.0f} s", header_style="bold"
    )
    table.add_column("output")
    table.add_column("path")
    for label, path in ctx.outputs.items():
        table.add_row(label, path)
    console.print(table)
    console.print(
        "Every step above was a Prefect flow run. To browse them (tasks, artifacts, the stats "
        "table, the loss table): [bold]make ui[/], then open http://127.0.0.1:4200/runs"
    )
    return 0
