"""Model benchmark: smelt's Decoder against transformers' own Llama/Qwen3 on the same config.

1. Training step time (forward + backward + AdamW step), same weights, same batch, same process,
   A/B order alternating every iteration, median of N. transformers gets `labels` and shifts them
   itself; smelt gets the already-shifted targets (-100 at the end), so both optimize the same
   loss (checked before timing).
2. Peak memory of the loss (forward + backward) at vocab 32768: chunked cross-entropy vs plain
   full-logits cross-entropy, each in a fresh subprocess, as the rise of peak RSS (ru_maxrss).

    .venv/bin/python bench/model_bench.py                       # CPU, 1 thread
    .venv/bin/python bench/model_bench.py --device cuda --compile --presets small --batch 16 \
        --seq-len 1024                                          # GPU: adds MFU for smelt

Prints a markdown table and one JSON line (prefix `JSON: `).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time

import torch

from smelt.model import Decoder, get_preset
from smelt.model.export_hf import to_hf_key

# (label, preset, overrides): `test` and a ~27M model as Qwen3 (QK-norm), `test` as Llama.
CASES = {
    "test": ("test", {}),
    "test-llama": ("test", {"qk_norm": False}),
    "skylar-small": ("skylar-small", {}),
    "small": ("small", {}),
}
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense, no sparsity


def build_pair(cfg, device):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    ours = Decoder(cfg).to(device)
    fields = dict(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.ffn_hidden,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads,
        head_dim=cfg.head_dim,
        max_position_embeddings=cfg.max_seq_len,
        rms_norm_eps=cfg.norm_eps,
        rope_theta=float(cfg.rope_theta),
        tie_word_embeddings=cfg.tie_embeddings,
    )
    if cfg.qk_norm:
        theirs = Qwen3ForCausalLM(Qwen3Config(**fields))
    else:
        theirs = LlamaForCausalLM(LlamaConfig(**fields))
    theirs.config._attn_implementation = "sdpa"
    state = {to_hf_key(k): v for k, v in ours.state_dict().items()}
    theirs.load_state_dict(state, strict=False)
    return ours, theirs.to(device)


def time_training(args, label, device) -> dict:
    preset, overrides = CASES[label]
    cfg = get_preset(preset, **overrides)
    torch.manual_seed(0)
    ours, theirs = build_pair(cfg, device)
    ours.train(), theirs.train()
    if args.compile:
        ours = torch.compile(ours)
    batch, seq = args.batch, args.seq_len
    data = torch.randint(0, cfg.vocab_size, (batch, seq), device=device)
    targets = torch.cat([data[:, 1:], torch.full_like(data[:, :1], -100)], dim=1)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step_ours(opt):
        with autocast:
            loss = ours(data, targets).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    def step_theirs(opt):
        with autocast:
            loss = theirs(input_ids=data, labels=data).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=1e-4)
    loss_a, loss_b = step_ours(opt_ours).item(), step_theirs(opt_theirs).item()
    tolerance = 1e-3 if device.type == "cpu" else 2e-2  # bf16 autocast on GPU
    assert abs(loss_a - loss_b) < tolerance * max(1.0, abs(loss_b)), (loss_a, loss_b)
    # Wall time, and on CPU also process CPU time: on a shared machine the CPU time of a
    # single-threaded step is what the code costs; wall time adds waiting for a core.
    wall = {"smelt": [], "transformers": []}
    cpu = {"smelt": [], "transformers": []}
    for i in range(args.warmup + args.steps):
        order = [("smelt", step_ours, opt_ours), ("transformers", step_theirs, opt_theirs)]
        for name, fn, opt in order if i % 2 == 0 else order[::-1]:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, start_cpu = time.perf_counter(), time.process_time()
            fn(opt)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= args.warmup:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    ours_s = statistics.median(wall["smelt"])
    theirs_s = statistics.median(wall["transformers"])
    ours_cpu, theirs_cpu = statistics.median(cpu["smelt"]), statistics.median(cpu["transformers"])
    tokens = batch * seq
    row = {
        "case": label,
        "preset": preset,
        "params": cfg.num_params(),
        "hf_class": type(theirs).__name__,
        "batch": batch,
        "seq_len": seq,
        "smelt_s": ours_s,
        "transformers_s": theirs_s,
        "ratio": ours_s / theirs_s,
        "smelt_cpu_s": ours_cpu,
        "transformers_cpu_s": theirs_cpu,
        "cpu_ratio": ours_cpu / theirs_cpu,
        "smelt_tok_s": tokens / ours_s,
        "transformers_tok_s": tokens / theirs_s,
        "loss_smelt": loss_a,
        "loss_transformers": loss_b,
    }
    if device.type == "cuda":
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
        flops = Decoder.estimate_flops_per_token(ours._orig_mod if args.compile else ours, seq)
        row["gpu"] = name
        row["mfu"] = flops * tokens / ours_s / peak if peak else None
    return row


MEMORY_SCRIPT = r"""
import os, sys, threading, time, torch
from smelt.model.loss import chunked_cross_entropy, reference_cross_entropy
torch.set_num_threads(1)
mode, n, d, vocab, device = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
page = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page

torch.manual_seed(0)
hidden = torch.randn(n, d, device=device, requires_grad=True)
weight = (0.02 * torch.randn(vocab, d, device=device)).requires_grad_()
targets = torch.randint(0, vocab, (n,), device=device)
fn = chunked_cross_entropy if mode == "chunked" else reference_cross_entropy
peak, done = [rss()], threading.Event()

def sample():  # RSS every ~0.2 ms while the loss runs (torch releases the GIL inside ops)
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.0002)

base = rss()
if device == "cuda":
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base_cuda = torch.cuda.memory_allocated()
sampler = threading.Thread(target=sample)
sampler.start()
loss = fn(hidden, weight, targets)
loss.backward()
if device == "cuda":
    torch.cuda.synchronize()
done.set()
sampler.join()
rise = (torch.cuda.max_memory_allocated() - base_cuda) if device == "cuda" else peak[0] - base
print(rise, loss.item())
"""


def measure_loss_memory(tokens: int, d_model: int, vocab: int, device: str) -> dict:
    """Peak memory rise of one loss forward+backward (inputs and their gradients excluded from
    the baseline only where they already exist): CPU = sampled RSS, CUDA = max allocated."""
    out = {}
    for mode in ("chunked", "plain"):
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                MEMORY_SCRIPT,
                mode,
                str(tokens),
                str(d_model),
                str(vocab),
                device,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        peak_bytes, loss = result.stdout.split()
        out[mode] = {"peak_rise_mib": int(peak_bytes) / 2**20, "loss": float(loss)}
    out["logits_mib"] = tokens * vocab * 4 / 2**20
    out["grads_mib"] = (tokens + vocab) * d_model * 4 / 2**20
    out.update(
        tokens=tokens,
        d_model=d_model,
        vocab=vocab,
        method="sampled RSS" if device == "cpu" else "torch.cuda.max_memory_allocated",
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--compile", action="store_true", help="torch.compile smelt's model")
    parser.add_argument(
        "--presets",
        default="test,test-llama,skylar-small",
        help=f"comma-separated cases from {sorted(CASES)}",
    )
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model (median)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1 = stable)")
    parser.add_argument("--memory-tokens", type=int, default=4096)
    parser.add_argument("--skip-memory", action="store_true")
    args, ignored = parser.parse_known_args()  # bench/run.sh passes one argument list to all
    if ignored:
        print(f"model_bench: ignoring arguments meant for other benchmarks: {ignored}")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    rows = [time_training(args, label, device) for label in args.presets.split(",")]
    memory = (
        None
        if args.skip_memory
        else measure_loss_memory(args.memory_tokens, 768, 32768, args.device)
    )

    print(
        f"\nTraining step (fwd+bwd+AdamW), {args.device}, {args.threads} thread(s), "
        f"median of {args.steps}, torch {torch.__version__}\n"
    )
    print(
        "| case | params | HF class | batch x seq | smelt wall s | transformers wall s | wall ratio "
        "| smelt CPU s | transformers CPU s | CPU ratio | smelt tok/s |"
        + (" MFU |" if device.type == "cuda" else "")
    )
    print("|---" * (11 + (device.type == "cuda")) + "|")
    for r in rows:
        mfu = f" {r['mfu']:.1%} |" if r.get("mfu") is not None else ""
        print(
            f"| {r['case']} | {r['params'] / 1e6:.1f}M | {r['hf_class']} | {r['batch']} x "
            f"{r['seq_len']} | {r['smelt_s']:.3f} | {r['transformers_s']:.3f} | "
            f"{r['ratio']:.2f}x | {r['smelt_cpu_s']:.3f} | {r['transformers_cpu_s']:.3f} | "
            f"{r['cpu_ratio']:.2f}x | {r['smelt_tok_s']:.0f} |{mfu}"
        )
    if memory:
        print(
            f"\nLoss forward+backward, {memory['tokens']} tokens x d {memory['d_model']} x vocab "
            f"{memory['vocab']} (full fp32 logits = {memory['logits_mib']:.0f} MiB; gradients of "
            f"hidden + weight = {memory['grads_mib']:.0f} MiB), peak rise ({memory['method']}):\n"
        )
        print("| loss | peak rise MiB | loss value |\n|---|---|---|")
        for mode in ("chunked", "plain"):
            m = memory[mode]
            print(f"| {mode} | {m['peak_rise_mib']:.0f} | {m['loss']:.5f} |")
    print(
        "JSON: "
        + json.dumps(
            {
                "bench": "model",
                "device": args.device,
                "threads": args.threads,
                "compile": args.compile,
                "cpu": platform.processor() or platform.machine(),
                "torch": torch.__version__,
                "training": rows,
                "loss_memory": memory,
            }
        )
    )


if __name__ == "__main__":
    main()
