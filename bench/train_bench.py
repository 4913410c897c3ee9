"""Training loop benchmark: checkpoint stall and loop overhead, side by side in one run.

1. Checkpoint stall per preset: how long the loop is blocked per checkpoint (capturing the state
   plus waiting, before the next optimizer step, for the background host copy), read from the
   real loop (`TrainResult.checkpoint_stalls_s`), next to what a synchronous snapshot (cloning
   every tensor in the loop) and a synchronous `torch.save` of the same state would block.
2. Loop overhead: seconds per step of `smelt.training.loop.train` (loader, metrics.jsonl,
   TensorBoard, checkpoints every 10 steps) against a bare forward/backward/clip/step loop of
   the same model on preloaded tensors; runs alternate A/B and medians are reported.

    .venv/bin/python bench/train_bench.py                       # CPU: presets test and small
    .venv/bin/python bench/train_bench.py --device cuda         # GPU: small preset, bf16

Data: synthetic uint32 shards (random ids, random document lengths) in the ARCHITECTURE.md format,
so the model's vocabulary (16384) and step cost are those of a real run.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from smelt import storage
from smelt.model.decoder import Decoder
from smelt.prep.layout import ShardsLayout
from smelt.prep.shard_format import Manifest, ShardInfo
from smelt.training import optim
from smelt.training.architecture import build_model_config
from smelt.training.config import TrainConfig
from smelt.training.loop import train

VOCAB = 16384


def write_shards(root: Path, tokens: int, seed: int = 0) -> str:
    """Random-token shards (train + val) in the exact ARCHITECTURE.md layout."""
    rng = np.random.default_rng(seed)
    layout = ShardsLayout.at(str(root))
    shards = []
    for split, count in (("train", tokens), ("val", max(tokens // 20, 8192))):
        ids = rng.integers(0, VOCAB - 1, size=count, dtype=np.uint32).astype("<u4")
        ends = np.cumsum(rng.integers(200, 2000, size=count // 200 + 1))
        ends = np.append(ends[ends < count], count).astype("<u8")
        ids[ends - 1] = VOCAB - 1  # end-of-text closes each document
        rel = layout.shard_path(split, 0)
        storage.write_bytes(layout.uri(rel), ids.tobytes())
        storage.write_bytes(layout.uri(layout.idx_path(rel)), ends.tobytes())
        shards.append(
            ShardInfo(
                split=split,
                path=rel,
                num_tokens=count,
                num_docs=len(ends),
                bytes=count * 4,
                sha256=hashlib.sha256(ids.tobytes()).hexdigest(),
            )
        )
    manifest = Manifest(VOCAB, VOCAB - 1, "synthetic", tuple(shards))
    storage.write_text(layout.manifest, manifest.to_json())
    return layout.root


def run_smelt(config: TrainConfig) -> tuple[float, list[float]]:
    """(seconds per step of the loop, checkpoint stalls) of a fresh run."""
    shutil.rmtree(config.output, ignore_errors=True)
    result = train(config)
    return result.loop_seconds / config.max_steps, result.checkpoint_stalls_s


def run_bare(config: TrainConfig, device: torch.device) -> float:
    """Seconds per step of the plainest loop over the same model and batch shape."""
    torch.manual_seed(config.seed)
    model = Decoder(build_model_config(config, VOCAB)).to(device)
    opt = optim.build_optimizer(model, config, device)
    gen = torch.Generator().manual_seed(0)
    data = torch.randint(
        0, VOCAB, (config.max_steps, config.batch_size, config.seq_len + 1), generator=gen
    )
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    _sync(device)
    started = time.perf_counter()
    for step in range(config.max_steps):
        batch = data[step].to(device)
        with amp or torch.autocast("cpu", enabled=False):
            loss = model(batch[:, :-1], targets=batch[:, 1:]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()  # the smelt loop reads the loss every step too
    _sync(device)
    return (time.perf_counter() - started) / config.max_steps


def blocking_alternatives(config: TrainConfig, device: torch.device) -> dict[str, float]:
    """What a synchronous snapshot would block: clone everything; torch.save to a file."""
    torch.manual_seed(0)
    model = Decoder(build_model_config(config, VOCAB)).to(device)
    opt = optim.build_optimizer(model, config, device)
    idx = torch.randint(0, VOCAB, (1, 16), device=device)
    model(idx, targets=idx).loss.backward()
    opt.step()
    state = {**model.state_dict(), **optim.state_tensors(model, opt)[0]}
    timings = {}
    _sync(device)
    started = time.perf_counter()
    copies = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
    timings["sync_clone_s"] = time.perf_counter() - started
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(copies, os.path.join(tmp, "state.pt"))
    timings["sync_torch_save_s"] = time.perf_counter() - started
    timings["state_mb"] = sum(v.numel() * v.element_size() for v in copies.values()) / 2**20
    return timings


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _config(shards: str, out: Path, preset: str, device: str, **changes) -> TrainConfig:
    values = dict(
        shards=shards,
        output=str(out),
        preset=preset,
        max_steps=30,
        batch_size=4,
        seq_len=128,
        checkpoint_every=10,
        keep_last=1,
        eval_every=0,
        seed=0,
        device=device,
        num_threads=1 if device == "cpu" else None,
        log_every=10,
    )
    values.update(changes)
    return TrainConfig(**values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--reps", type=int, default=3, help="A/B pairs for the overhead")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="smelt-train-bench-"))
    os.environ.setdefault("SMELT_CACHE_DIR", str(work / "cache"))
    out = io.StringIO()
    try:
        cuda = args.device == "cuda"
        shards = write_shards(work / "shards", tokens=4_000_000 if cuda else 400_000)
        device = torch.device(args.device)
        print(
            f"# Training benchmark ({args.device}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads available)\n",
            file=out,
        )
        stall_rows = []
        presets = ["small"] if cuda else ["test", "small"]
        for preset in presets:
            shape = (
                dict(batch_size=8, seq_len=1024, max_steps=40, checkpoint_every=10)
                if cuda
                else dict(batch_size=1, seq_len=64, max_steps=7, checkpoint_every=2)
                if preset == "small"
                else dict(max_steps=21, checkpoint_every=5)
            )
            config = _config(shards, work / f"stall-{preset}", preset, args.device, **shape)
            per_step, stalls = run_smelt(config)
            alt = blocking_alternatives(config, device)
            stall_rows.append((preset, alt["state_mb"], stalls, per_step, alt))
        print(
            "| preset | state (MiB) | smelt stall per checkpoint (median, max) | "
            "sync clone | sync torch.save | step time |",
            file=out,
        )
        print("|---|---|---|---|---|---|", file=out)
        for preset, mb, stalls, per_step, alt in stall_rows:
            print(
                f"| {preset} | {mb:.0f} | {1e3 * statistics.median(stalls):.1f} ms, "
                f"{1e3 * max(stalls):.1f} ms (n={len(stalls)}) | "
                f"{1e3 * alt['sync_clone_s']:.0f} ms | {1e3 * alt['sync_torch_save_s']:.0f} ms"
                f" | {per_step:.3f} s |",
                file=out,
            )

        preset = "small" if cuda else "test"
        bare, smelt = [], []
        for rep in range(args.reps):
            config = _config(
                shards,
                work / "overhead",
                preset,
                args.device,
                max_steps=args.steps,
                seed=rep,
                **(dict(batch_size=8, seq_len=1024) if cuda else {}),
            )
            bare.append(run_bare(config, device))
            per_step, _ = run_smelt(config)
            smelt.append(per_step)
        b, s = statistics.median(bare), statistics.median(smelt)
        print(
            f"\nLoop overhead, preset {preset}, batch {config.batch_size} x {config.seq_len}, "
            f"{args.steps} steps, checkpoint every 10, metrics every step, {args.reps} "
            "alternated A/B pairs:\n",
            file=out,
        )
        print("| loop | s/step (median) | runs |", file=out)
        print("|---|---|---|", file=out)
        print(
            f"| bare forward/backward/step | {b:.4f} | {', '.join(f'{x:.4f}' for x in bare)} |",
            file=out,
        )
        print(f"| smelt train loop | {s:.4f} | {', '.join(f'{x:.4f}' for x in smelt)} |", file=out)
        print(f"\nsmelt / bare = {s / b:.3f} (overhead {100 * (s / b - 1):+.1f}%)", file=out)
        if cuda:
            tokens = config.batch_size * config.seq_len
            model = Decoder(build_model_config(config, VOCAB))
            fpt = model.estimate_flops_per_token(config.seq_len)
            from smelt.training.metrics import peak_flops

            peak = peak_flops(device)
            rate = tokens / s
            mfu = f"{100 * rate * fpt / peak:.1f}%" if peak else "n/a"
            print(
                f"\nsmall preset on {torch.cuda.get_device_name()}: {rate:,.0f} tokens/s, "
                f"MFU {mfu}",
                file=out,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(out.getvalue())


if __name__ == "__main__":
    main()
