"""Fine-tuning benchmark: smelt's SFT step against a plain transformers training loop on the same
model and the same packed batch.

The batch is what `smelt sft` trains on: synthetic conversations (random ids, lengths 48-400
tokens, the last ~40% of each the assistant's reply ending in `<|im_end|>`) packed first-fit into
B rows of T tokens by smelt's own `pack_rows` + `collate` (document ids, targets -100 off the
assistant's tokens). smelt runs `Decoder(inputs, targets, doc_ids, loss_weights)` (SDPA with
the document mask; only the counted positions go through the output head); transformers runs
its own `Qwen3ForCausalLM` (the `test` preset has QK-norm) with the same weights, the same
document mask as a 4D boolean `attention_mask`, and `labels` (it shifts them itself). Both use
`torch.optim.AdamW(lr=1e-4)`; the two losses agree before timing. Steps alternate, 2 warmup
+ N timed (three-way, rotating who goes first), one torch thread; medians of wall and process
CPU time. A third variant, smelt without loss weights (every position through the output head,
as in pretraining), shows where the difference comes from. A last row times smelt's
`ConversationLoader.next_batch` on real conversation shards of the same shape (what the loop
adds per step).

    .venv/bin/python bench/sft_bench.py                     # CPU: test preset, 4 x 512
    .venv/bin/python bench/sft_bench.py --device cuda --preset small --batch 8 --seq-len 2048

Prints a markdown table and one JSON line (prefix `JSON: `).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_bench import build_pair  # noqa: E402 - the same model pair as the model benchmark

from smelt.model import get_preset  # noqa: E402
from smelt.training.conversations import collate, pack_rows  # noqa: E402

END_OF_TURN, PAD = 2, 3  # smelt's tokenizer: <|im_end|>, <pad>


def conversations(count: int, vocab: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(ids, assistant mask) of `count` synthetic conversations."""
    rng = np.random.default_rng(seed)
    convs = []
    for _ in range(count):
        length = int(rng.integers(48, 401))
        ids = rng.integers(16, vocab, size=length).astype(np.int64)
        reply = int(length * 0.6)
        ids[-1] = END_OF_TURN
        mask = np.zeros(length, dtype=bool)
        mask[reply:] = True
        convs.append((ids, mask))
    return convs


def packed_batch(convs, batch: int, seq_len: int):
    lengths = np.array([len(ids) for ids, _ in convs])
    rows = pack_rows(lengths, iter(range(len(convs))), batch, seq_len)
    return collate([[convs[i] for i in row] for row in rows], seq_len, PAD, END_OF_TURN, 1.0)


def dense_mask(doc_ids: torch.Tensor) -> torch.Tensor:
    """The document-causal mask as transformers takes it: (B, 1, T, T) bool, True = attend."""
    seq = doc_ids.shape[1]
    causal = torch.ones(seq, seq, dtype=torch.bool, device=doc_ids.device).tril()
    return ((doc_ids[:, :, None] == doc_ids[:, None, :]) & causal)[:, None]


def time_steps(args, device: torch.device) -> dict:
    cfg = get_preset(args.preset)
    torch.manual_seed(0)
    ours, theirs = build_pair(cfg, device)
    ours.train(), theirs.train()
    batch = packed_batch(conversations(400, cfg.vocab_size), args.batch, args.seq_len)
    inputs, targets = batch.inputs.to(device), batch.targets.to(device)
    doc_ids, weights = batch.doc_ids.to(device), batch.weights.to(device)
    mask = dense_mask(doc_ids)
    labels = torch.cat([torch.full_like(targets[:, :1], -100), targets[:, :-1]], dim=1)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step_ours(opt):
        with autocast:
            loss = ours(inputs, targets=targets, doc_ids=doc_ids, loss_weights=weights).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    def step_ours_all_positions(opt):  # the same without loss weights: every position's logits
        with autocast:
            loss = ours(inputs, targets=targets, doc_ids=doc_ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    def step_theirs(opt):
        with autocast:
            loss = theirs(input_ids=inputs, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=1e-4)
    loss_a, loss_b = step_ours(opt_ours).item(), step_theirs(opt_theirs).item()
    tolerance = 1e-3 if device.type == "cpu" else 2e-2
    assert abs(loss_a - loss_b) < tolerance * max(1.0, abs(loss_b)), (loss_a, loss_b)
    order = [
        ("smelt", step_ours, opt_ours),
        ("transformers", step_theirs, opt_theirs),
        ("smelt_all_positions", step_ours_all_positions, opt_ours),
    ]
    wall: dict[str, list[float]] = {name: [] for name, _, _ in order}
    cpu: dict[str, list[float]] = {name: [] for name, _, _ in order}
    for i in range(args.warmup + args.steps):
        for name, fn, opt in order[i % 3 :] + order[: i % 3]:  # rotate who goes first
            _sync(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            fn(opt)
            _sync(device)
            if i >= args.warmup:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    counted = int((targets != -100).sum())
    row = {
        "preset": args.preset,
        "params": cfg.num_params(),
        "batch": args.batch,
        "seq_len": args.seq_len,
        "conversations": int(doc_ids.max(dim=1).values.sum()),
        "loss_tokens": counted,
        "fill": float((inputs != PAD).float().mean()),
        "loss_smelt": loss_a,
        "loss_transformers": loss_b,
    }
    for name in wall:
        row[f"{name}_s"] = statistics.median(wall[name])
        row[f"{name}_cpu_s"] = statistics.median(cpu[name])
    row["ratio"] = row["smelt_s"] / row["transformers_s"]
    row["cpu_ratio"] = row["smelt_cpu_s"] / row["transformers_cpu_s"]
    return row


def time_loader(args, vocab: int) -> float:
    """Seconds per `ConversationLoader.next_batch` over real conversation shards."""
    from smelt.prep.conversation_shards import ConversationLayout, ShardWriter, write_record
    from smelt.prep.shard_format import Manifest
    from smelt.storage import write_text
    from smelt.training.conversations import ConversationLoader

    with tempfile.TemporaryDirectory() as tmp:
        layout = ConversationLayout(tmp)
        writer = ShardWriter(tmp, "train", 0, 1 << 22)
        for ids, mask in conversations(2000, vocab, seed=1):
            writer.add(ids.astype(np.uint32), mask)
        shards, masks = writer.finish()
        write_text(layout.manifest, Manifest(vocab, 0, "synthetic", tuple(shards)).to_json())
        record = {
            "seq_len": args.seq_len,
            "eos_id": 0,
            "pad_id": PAD,
            "end_of_turn_id": END_OF_TURN,
        }
        write_record(layout, "synthetic", {**record, "masks": masks})
        loader = ConversationLoader(tmp, batch_size=args.batch, seq_len=args.seq_len, seed=0)
        loader.next_batch()
        started = time.perf_counter()
        for _ in range(args.steps):
            loader.next_batch()
        seconds = (time.perf_counter() - started) / args.steps
        loader.close()
    return seconds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default="test")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args, _ = parser.parse_known_args()  # `make bench` passes every script the same flags
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    row = time_steps(args, device)
    row["loader_s"] = time_loader(args, get_preset(args.preset).vocab_size)
    cpu_name = platform.processor() or platform.machine()
    row["device"] = torch.cuda.get_device_name() if device.type == "cuda" else cpu_name
    print(
        f"SFT step, {args.preset} ({row['params'] / 1e6:.1f}M), {args.batch} x {args.seq_len} "
        f"packed ({row['conversations']} conversations, {row['fill']:.0%} filled, "
        f"{row['loss_tokens']} loss tokens), {args.threads} thread(s), {device}:\n"
    )
    print("| system | wall s | CPU s |")
    print("|---|---|---|")
    print(f"| smelt | {row['smelt_s']:.3f} | {row['smelt_cpu_s']:.3f} |")
    print(
        f"| smelt, every position through the head | {row['smelt_all_positions_s']:.3f} | "
        f"{row['smelt_all_positions_cpu_s']:.3f} |"
    )
    print(f"| transformers | {row['transformers_s']:.3f} | {row['transformers_cpu_s']:.3f} |")
    print(f"| **smelt / transformers** | **{row['ratio']:.2f}x** | **{row['cpu_ratio']:.2f}x** |")
    print(f"| smelt loader, per batch | {row['loader_s']:.4f} | |")
    print("\nJSON: " + json.dumps(row))


if __name__ == "__main__":
    main()
