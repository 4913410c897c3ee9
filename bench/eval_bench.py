"""Evaluation throughput: smelt's scorer against lm-evaluation-harness on the same exported model
and the same items.

Both sides score the same HellaSwag-layout items (4 choices each, built from Python's
documentation, prompts as the harness builds them) with the same model: a `test` (or `small`)
preset exported with `export_hf`; smelt reads that folder back with `import_hf`, the harness
loads it with `AutoModelForCausalLM` (its `HFLM`, `logits_cache` on, its default). Timed: the
log-likelihood requests alone (`Scorer.loglikelihood` vs `HFLM.loglikelihood` on the same
(context, continuation) pairs, tokenization included), same batch size, A/B order alternating,
medians. Before timing, the two sides' accuracies are checked equal.

    .venv/bin/python bench/eval_bench.py                          # CPU, test preset, 1 thread
    .venv/bin/python bench/eval_bench.py --device cuda --preset small --items 2000 --batch 64

Prints a markdown table and one JSON line (prefix `JSON: `).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.* helpers (the item builder) from the checkout

from tests.evaluation.task_factory import hellaswag_rows, sentences  # noqa: E402
from tests.training.conftest import build_tokenizer  # noqa: E402


def build_model(folder: Path, preset: str, vocab_path: Path, vocab_size: int) -> None:
    """A preset with random weights and the pydoc tokenizer, exported for transformers. The
    model's vocabulary is the preset's (16,384) although the small test tokenizer uses only its
    first 512 rows: the output projection then costs what it costs with a real tokenizer."""
    from smelt.model import Decoder, get_preset
    from smelt.model.export_hf import export_hf

    torch.manual_seed(0)
    model = Decoder(get_preset(preset, vocab_size=vocab_size))
    export_hf(model, folder, tokenizer_path=vocab_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="test")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (shared box)")
    parser.add_argument("--vocab", type=int, default=16384, help="the model's vocabulary")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from smelt.evaluation.layouts import hellaswag
    from smelt.evaluation.metrics import choice_metrics
    from smelt.evaluation.scorer import Scorer
    from smelt.model import Decoder
    from smelt.model.export_hf import import_hf
    from smelt.prep.layout import TokenizerLayout

    work = Path(tempfile.mkdtemp(prefix="smelt-eval-bench-"))
    tokenizer_file = Path(TokenizerLayout.at(str(work)).tokenizer)
    build_tokenizer(tokenizer_file)
    build_model(work / "hf", args.preset, tokenizer_file, args.vocab)
    device = torch.device(args.device)
    dtype = "bfloat16" if device.type == "cuda" else "float32"

    config, state = import_hf(work / "hf")
    ours = Decoder(config)
    ours.load_state_dict(state)
    ours = ours.to(device).eval()
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(TokenizerLayout.at(str(work / "hf")).tokenizer)
    scorer = Scorer(
        ours,
        tokenizer,
        batch_size=args.batch,
        autocast_dtype=torch.bfloat16 if device.type == "cuda" else None,
    )
    theirs = HFLM(
        pretrained=str(work / "hf"), batch_size=args.batch, device=args.device, dtype=dtype
    )

    pool = sentences(args.items + 8)
    items = [hellaswag(row) for row in hellaswag_rows(pool, args.items)]
    requests = [r for item in items for r in item.requests]
    instances = [
        Instance(request_type="loglikelihood", doc={}, arguments=r, idx=i)
        for i, r in enumerate(requests)
    ]

    def run_smelt() -> list[float]:
        return [s.loglikelihood for s in scorer.loglikelihood(requests)]

    def run_harness() -> list[float]:
        return [ll for ll, _ in theirs.loglikelihood(instances, disable_tqdm=True)]

    def accuracy(lls: list[float]) -> dict:
        per_item, it = [], iter(lls)
        for item in items:
            per_item.append([_Score(next(it)) for _ in item.requests])
        return choice_metrics(items, per_item)

    a, b = accuracy(run_smelt()), accuracy(run_harness())  # warm-up and check
    assert (a["acc"], a["acc_norm"]) == (b["acc"], b["acc_norm"]), (a, b)
    # Wall time and process CPU time: with one thread on a shared machine, CPU time is what the
    # code costs; wall time adds the waits for a core that other jobs hold.
    wall: dict[str, list[float]] = {"smelt": [], "lm-eval": []}
    cpu: dict[str, list[float]] = {"smelt": [], "lm-eval": []}
    for rep in range(args.reps):
        order = [("smelt", run_smelt), ("lm-eval", run_harness)]
        for name, fn in order if rep % 2 == 0 else order[::-1]:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    med = {name: statistics.median(values) for name, values in wall.items()}
    med_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    row = {
        "preset": args.preset,
        "params": sum(p.numel() for p in ours.parameters()),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": args.threads,
        "items": len(items),
        "requests": len(requests),
        "batch": args.batch,
        "vocab": args.vocab,
        "smelt_s": med["smelt"],
        "lm_eval_s": med["lm-eval"],
        "smelt_cpu_s": med_cpu["smelt"],
        "lm_eval_cpu_s": med_cpu["lm-eval"],
        "smelt_items_s": len(items) / med["smelt"],
        "lm_eval_items_s": len(items) / med["lm-eval"],
        "speedup": med["lm-eval"] / med["smelt"],
        "cpu_speedup": med_cpu["lm-eval"] / med_cpu["smelt"],
        "acc": a["acc"],
        "acc_norm": a["acc_norm"],
        "wall_runs": wall,
        "cpu_runs": cpu,
        "load_avg": os.getloadavg(),
        "machine": platform.platform(),
    }
    print("| system | preset | items | batch | wall s | items/s | CPU s | speedup wall / CPU |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, key in (("smelt Scorer", "smelt"), ("lm-eval 0.4.13 HFLM", "lm_eval")):
        ratio = f"{row['speedup']:.2f}x / {row['cpu_speedup']:.2f}x" if key == "smelt" else "1 / 1"
        print(
            f"| {label} | {row['preset']} | {row['items']} | {row['batch']} | "
            f"{row[f'{key}_s']:.2f} | {row[f'{key}_items_s']:.1f} | {row[f'{key}_cpu_s']:.2f} | "
            f"{ratio} |"
        )
    print("JSON: " + json.dumps(row))


class _Score:
    """A log-likelihood in the shape `choice_metrics` reads."""

    def __init__(self, loglikelihood: float) -> None:
        self.loglikelihood = loglikelihood


if __name__ == "__main__":
    main()
