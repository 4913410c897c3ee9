"""GPU check: smelt's GPU code paths on one GPU, in one run, as one table.

    python bench/gpu_check.py                         # CUDA: the `small` preset (GPT-2 small's shape)
    python bench/gpu_check.py --device cpu --tiny     # every step on CPU, a narrow model (tests)

`bench/gpu_check.sh` installs torch with CUDA and the project, then runs this. Each row is one
path that only a GPU really exercises, reached through smelt's public entry points
(`smelt.training.loop.train` with a `TrainConfig`, `python -m smelt.training.loop`,
`smelt export-hf`, `open_checkpoint` + generation):

1. data     real text (the Python standard library's sources and pydoc topics, on every
            machine) -> smelt's tokenizer trainer -> smelt's shard builder
2. train    bf16 autocast + torch.compile + fused AdamW: tokens/s and MFU (median over the
            steps after warm-up; goal on H100/H200: MFU >= 45%)
3. doc mask the same with document-masked attention (FlexAttention on CUDA)
4. stall    checkpoint stall of row 2's run (pinned-memory copy, waited on before the next
            optimizer step; goal <= 100 ms)
5. resume   a run SIGKILLed after a checkpoint and resumed, against one never interrupted:
            identical losses (deterministic kernels, eager bf16)
6. generate greedy decoding with the KV cache: tokens/s, and the same tokens as recomputing
            the whole sequence at every step
7. export   `smelt export-hf`, loaded by transformers: largest logit difference to smelt's
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TINY_MODEL = {"d_model": 64, "n_layers": 2, "n_heads": 2, "n_kv_heads": 1, "ffn_hidden": 128}
DETERMINISTIC_ENV = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}


@dataclass
class Row:
    check: str
    ok: bool
    figure: str
    goal: str = ""


@dataclass(frozen=True)
class Plan:
    """Sizes of one check run: the real one on CUDA, a tiny one anywhere."""

    device: str
    preset: str
    overrides: dict[str, Any]
    vocab_size: int
    corpus_bytes: int
    batch_size: int
    seq_len: int
    steps: int
    warmup_steps: int
    checkpoint_every: int
    compile: bool
    resume_steps: int
    resume_batch: int
    new_tokens: int

    @classmethod
    def for_args(cls, args: argparse.Namespace) -> Plan:
        if args.tiny:
            return cls(
                device=args.device,
                preset="test",
                overrides=TINY_MODEL,
                vocab_size=512,
                corpus_bytes=400_000,
                batch_size=4,
                seq_len=64,
                steps=args.steps or 12,
                warmup_steps=2,
                checkpoint_every=4,
                compile=args.compile,
                resume_steps=12,
                resume_batch=4,
                new_tokens=16,
            )
        return cls(
            device=args.device,
            preset="small",
            overrides={},
            vocab_size=16384,
            corpus_bytes=6_000_000,
            batch_size=args.batch_size or 32,
            seq_len=1024,
            steps=args.steps or 60,
            warmup_steps=10,
            checkpoint_every=20,
            compile=True,
            resume_steps=30,
            resume_batch=8,
            new_tokens=256,
        )


# -- 1. data -------------------------------------------------------------------------------------


def prepare_data(work: Path, plan: Plan) -> str:
    """A finished corpus of real text, a tokenizer trained on it, and its shards."""
    import sysconfig
    from pydoc_data.topics import topics

    import pyarrow as pa

    from smelt.corpus.tables import write_table
    from smelt.prep.shards import build_shards
    from smelt.prep.tokenizer import train_tokenizer

    texts = [topics[key] for key in sorted(topics)]
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        if sum(map(len, texts)) >= plan.corpus_bytes:
            break
        texts.append(path.read_text(encoding="utf-8", errors="replace"))
    corpus = work / "corpus"
    write_table(
        str(corpus / "data" / "part-00000.parquet"),
        pa.table(
            {
                "id": [f"doc-{i}" for i in range(len(texts))],
                "text": texts,
                "source": ["python-stdlib"] * len(texts),
                "url": [None] * len(texts),
            }
        ),
    )
    stats = {"input_docs": len(texts), "kept": len(texts), "quarantined": 0, "filtered": {}}
    stats |= {"duplicates": {"exact": 0, "near": 0}, "pii": {}}
    (corpus / "stats.json").write_text(json.dumps(stats))
    train_tokenizer(str(corpus), str(work / "tokenizer"), vocab_size=plan.vocab_size)
    shards = work / "shards"
    build_shards(str(corpus), str(work / "tokenizer"), str(shards), val_fraction=0.02)
    return str(shards)


# -- 2-4. throughput and checkpoint stall ----------------------------------------------------------


def train_config(plan: Plan, shards: str, output: Path, **changes: Any):  # noqa: ANN201
    from smelt.training.config import TrainConfig

    values: dict[str, Any] = dict(
        shards=shards,
        output=str(output),
        preset=plan.preset,
        model_overrides=dict(plan.overrides),
        max_steps=plan.steps,
        batch_size=plan.batch_size,
        seq_len=plan.seq_len,
        warmup_steps=plan.warmup_steps,
        checkpoint_every=plan.checkpoint_every,
        keep_last=2,
        eval_every=0,
        device=plan.device,
        compile=plan.compile,
        log_every=1,
        num_threads=1 if plan.device == "cpu" else None,
    )
    values.update(changes)
    return TrainConfig(**values)


def throughput(config, plan: Plan) -> tuple[dict[str, float], Any]:  # noqa: ANN001
    """Median tokens/s and MFU over the steps after warm-up, and the run's result."""
    from smelt.training.loop import train

    records: list[dict[str, Any]] = []
    result = train(config, on_step=records.append)
    steady = [r for r in records if r["step"] > plan.warmup_steps] or records
    figures = {"tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady)}
    if all("mfu" in r for r in steady):
        figures["mfu"] = statistics.median(r["mfu"] for r in steady)
    return figures, result


def speed_row(name: str, figures: dict[str, float], plan: Plan, params: int, goal: bool) -> Row:
    """Tokens/s and MFU; with `goal`, MFU must reach 45% on a GPU whose peak is known."""
    mfu = figures.get("mfu")
    text = f"{figures['tokens_per_s']:,.0f} tokens/s"
    text += f", MFU {100 * mfu:.1f}%" if mfu is not None else ", MFU n/a (no GPU peak)"
    text += f" ({params / 1e6:.1f}M params, batch {plan.batch_size} x {plan.seq_len})"
    if not goal or plan.device == "cpu":
        return Row(name, figures["tokens_per_s"] > 0, text, "runs")
    return Row(name, mfu is None or mfu >= 0.45, text, "MFU >= 45% (H100/H200)")


def stall_row(stalls: list[float], plan: Plan) -> Row:
    if not stalls:
        return Row("checkpoint stall", False, "no checkpoint was taken", "<= 100 ms")
    median, worst = statistics.median(stalls), max(stalls)
    ok = plan.device == "cpu" or worst <= 0.1
    return Row(
        "checkpoint stall",
        ok,
        f"median {1e3 * median:.1f} ms, max {1e3 * worst:.1f} ms (n={len(stalls)})",
        "<= 100 ms",
    )


# -- 5. kill and resume --------------------------------------------------------------------------


def child_train(config_json: str) -> None:
    """A training process for the resume check: deterministic kernels, one JSON line out."""
    import torch

    from smelt.training.config import TrainConfig
    from smelt.training.loop import train

    torch.use_deterministic_algorithms(True, warn_only=True)
    result = train(TrainConfig.from_dict(json.loads(config_json)))
    print(json.dumps({"step": result.step, "resumed_from": result.resumed_from}), flush=True)


def _child(config, env: dict[str, str]) -> subprocess.Popen:  # noqa: ANN001
    return subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child-train",
            json.dumps(config.to_dict()),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen, timeout: float = 900) -> dict[str, Any]:
    out, err = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(f"training child failed ({process.returncode}): {err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def _losses(output: Path) -> list[float]:
    with open(output / "metrics.jsonl", encoding="utf-8") as fh:
        return [json.loads(line)["loss"] for line in fh if line.strip()]


def resume_row(plan: Plan, shards: str, work: Path) -> Row:
    """Kill a run (SIGKILL) after its first checkpoint, resume it, compare with a clean run."""
    every = plan.resume_steps // 3
    changes = dict(
        max_steps=plan.resume_steps,
        batch_size=plan.resume_batch,
        checkpoint_every=every,
        compile=False,
    )
    env = {**os.environ, **DETERMINISTIC_ENV, "PYTHONUNBUFFERED": "1"}
    reference = work / "resume-reference"
    _finish(_child(train_config(plan, shards, reference, **changes), env))
    victim = work / "resume-killed"
    config = train_config(plan, shards, victim, **changes)
    process = _child(config, env)
    marker = victim / f"step_{every:08d}" / "COMPLETE"
    deadline = time.monotonic() + 900
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    killed = process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.communicate()
    if not killed:
        return Row("kill and resume", False, "the run ended before it could be killed")
    resumed = _finish(_child(config, env))
    expected, got = _losses(reference), _losses(victim)
    worst = max((abs(a - b) for a, b in zip(expected, got, strict=False)), default=float("inf"))
    same = expected == got
    figure = (
        f"killed after step {every}'s checkpoint, resumed from step {resumed['resumed_from']}: "
        + ("losses identical" if same else f"losses differ (max |diff| {worst:.3g})")
        + f" over {len(got)} steps"
    )
    ok = same and resumed["resumed_from"] is not None and len(got) == plan.resume_steps
    return Row("kill and resume", ok, figure, "identical losses")


# -- 6. generation -------------------------------------------------------------------------------


def generate_row(checkpoint: str, plan: Plan) -> Row:
    """Greedy decoding with the KV cache: speed, and agreement with full recomputation."""
    import torch

    from smelt.model.generate import generate
    from smelt.training.inference import open_checkpoint

    opened = open_checkpoint(checkpoint, device=plan.device)
    model, tokenizer = opened.model, opened.require_tokenizer()
    prompt = tokenizer.encode("def main(argv=None):\n    ").ids
    settings = dict(max_new_tokens=plan.new_tokens, temperature=0.0)
    generate(model, [prompt], max_new_tokens=4, temperature=0.0)  # warm-up
    _sync(plan.device)
    started = time.perf_counter()
    cached = generate(model, [prompt], **settings)[0]
    _sync(plan.device)
    seconds = time.perf_counter() - started
    check = min(len(cached), 16)
    sequence = list(prompt)
    with torch.no_grad():
        for _ in range(check):
            logits = model.logits(torch.tensor([sequence], device=plan.device))
            sequence.append(int(logits[0, -1].argmax()))
    same = sequence[len(prompt) :] == cached[:check]
    figure = (
        f"{len(cached) / seconds:,.0f} tokens/s (batch 1, {len(cached)} new tokens); first "
        f"{check} tokens {'equal' if same else 'DIFFER from'} full recomputation"
    )
    return Row("generate (KV cache)", same and len(cached) > 0, figure, "same tokens")


# -- 7. export -----------------------------------------------------------------------------------


def export_row(checkpoint: str, work: Path) -> Row:
    """`smelt export-hf`, loaded by transformers without remote code, against smelt's logits
    (both on CPU in float32: this checks the format, not the GPU's arithmetic)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from smelt.training.inference import open_checkpoint

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    folder = work / "hf"
    subprocess.run(
        [sys.executable, "-m", "smelt.cli.main", "export-hf", "--checkpoint", checkpoint]
        + ["--output", str(folder)],
        check=True,
        capture_output=True,
        text=True,
    )
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    ours = open_checkpoint(checkpoint, device="cpu").model.float()
    generator = torch.Generator().manual_seed(0)
    idx = torch.randint(0, ours.config.vocab_size, (1, 32), generator=generator)
    with torch.no_grad():
        diff = (hf(idx).logits.float() - ours.logits(idx).float()).abs().max().item()
    return Row(
        "export-hf",
        diff < 1e-3,
        f"{type(hf).__name__} loads; max |logit diff| {diff:.2e}",
        "< 1e-3",
    )


# -- the run -------------------------------------------------------------------------------------


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def describe_device(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return (
            f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}"
        )
    return f"CPU ({os.cpu_count()} cores), torch {torch.__version__}"


def run_checks(plan: Plan, work: Path) -> list[Row]:
    """Every row, in order; a row that raises is reported as failed and the rest still run."""
    rows: list[Row] = []
    started = time.perf_counter()

    def attempt(name: str, fn, *args):  # noqa: ANN001, ANN202
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - one failed check must not hide the others
            rows.append(Row(name, False, f"{type(exc).__name__}: {str(exc)[:300]}"))
            return None

    shards = attempt("data", prepare_data, work, plan)
    if shards is None:
        return rows
    rows.append(Row("data", True, f"tokenizer + shards in {time.perf_counter() - started:.0f} s"))
    cuda = plan.device.startswith("cuda")
    mode = f"{'bf16' if cuda else 'fp32'}, {'compile' if plan.compile else 'eager'}"
    config = train_config(plan, shards, work / "train")
    name = f"train ({mode})"
    measured = attempt(name, throughput, config, plan)
    if measured is not None:
        figures, result = measured
        rows.append(speed_row(name, figures, plan, _params(config, shards), goal=True))
        rows.append(stall_row(result.checkpoint_stalls_s, plan))
    masked = train_config(plan, shards, work / "doc-mask", doc_mask=True, checkpoint_every=10**6)
    name = f"train + doc mask ({'FlexAttention' if cuda else 'SDPA mask'}, {mode})"
    measured = attempt(name, throughput, masked, plan)
    if measured is not None:
        rows.append(speed_row(name, measured[0], plan, _params(masked, shards), goal=False))
    resume = attempt("kill and resume", resume_row, plan, shards, work)
    if resume is not None:
        rows.append(resume)
    checkpoint = str(work / "train")
    for name, fn, args in (
        ("generate (KV cache)", generate_row, (checkpoint, plan)),
        ("export-hf", export_row, (checkpoint, work)),
    ):
        row = attempt(name, fn, *args)
        if row is not None:
            rows.append(row)
    return rows


def _params(config, shards: str) -> int:  # noqa: ANN001
    from smelt.model.decoder import Decoder
    from smelt.prep.shard_format import open_manifest
    from smelt.training.architecture import build_model_config

    model_config = build_model_config(config, open_manifest(shards).vocab_size)
    return Decoder(model_config).num_params()


def table(rows: list[Row], header: str) -> str:
    lines = [header, "", "| check | ok | result | goal |", "|---|---|---|---|"]
    lines += [f"| {r.check} | {'yes' if r.ok else 'NO'} | {r.figure} | {r.goal} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--tiny", action="store_true", help="a narrow model and few steps")
    parser.add_argument("--compile", action="store_true", help="torch.compile with --tiny too")
    parser.add_argument("--steps", type=int, default=None, help="steps of the throughput runs")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--work", default=None, help="keep the files here (default: a temp dir)")
    parser.add_argument("--child-train", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_train:
        child_train(args.child_train)
        return 0
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print("error: no CUDA device (use --device cpu --tiny to check the CPU paths)")
            return 2
    plan = Plan.for_args(args)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="smelt-gpu-check-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("SMELT_CACHE_DIR", str(work / "cache"))
        rows = run_checks(plan, work)
    header = (
        f"smelt GPU check on {describe_device(plan.device)}, preset {plan.preset}"
        f"{' (tiny)' if args.tiny else ''}, {time.strftime('%Y-%m-%d')}, "
        f"{time.perf_counter() - started:.0f} s"
    )
    print(table(rows, header), flush=True)
    return 0 if rows and all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
