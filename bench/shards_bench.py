"""Tokenizer + shards benchmark: smelt's shard build against its ceiling and datatrove.

On the same real text (the standard library's modules and pydoc topics, written as a 4-partition
corpus), in one run, alternating the order every repetition, one thread each
(TOKENIZERS_PARALLELISM=false). Throughput is text per CPU-second of the process (per core):
on a shared machine that is far steadier than wall time, which counts the time other
processes hold the cores.

1. ceiling: `Tokenizer.encode_batch` alone on the documents, already in memory.
2. smelt: `build_shards` end to end (read Parquet, tokenize, split train/val, write the
   intermediates, pack, SHA-256, manifest) with one worker.
3. datatrove: `ParquetReader -> DocumentTokenizer` (same tokenizer.json, loaded from the local
   file, `shuffle_documents=False` like smelt) in `.venv-bench`.

Every measurement runs in a fresh process and is timed inside it (imports excluded), so all
contenders start from the same state.

Then the loader: `ShardLoader` tokens/s at (B=8, T=1024), against the tokens/s one CPU training
step of the `small` preset consumes here (forward + backward, 2 threads; the optimizer step is
left out, which only makes the model look faster and the requirement stricter; wall time, as
the step uses 2 threads).

    .venv/bin/python bench/shards_bench.py [--mb 16] [--reps 3]

Prints a markdown table and one JSON line (prefix `JSON: `).
"""

from __future__ import annotations

import os

os.environ["TOKENIZERS_PARALLELISM"] = "false"  # per-core figures: no rayon threads anywhere

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # tests.shards.corpus_factory: the same real text the tests use

from smelt.corpus.layout import CorpusLayout  # noqa: E402
from smelt.corpus.tables import iter_rows  # noqa: E402
from smelt.prep.layout import TokenizerLayout  # noqa: E402
from smelt.prep.tokenizer import train_tokenizer  # noqa: E402
from smelt.prep.tokenizer_files import load_tokenizer  # noqa: E402
from smelt.training.loader import ShardLoader  # noqa: E402
from tests.shards.corpus_factory import documents, stdlib_sources, write_corpus  # noqa: E402

WORK = os.path.join(ROOT, "bench", "work", "shards")
PEER_PYTHON = os.path.join(ROOT, ".venv-bench", "bin", "python")
DATATROVE = """
import json, sys, time
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.tokens import DocumentTokenizer
corpus, tokenizer, out, logs = sys.argv[1:5]
pipeline = [ParquetReader(corpus, glob_pattern="part-*.parquet"),
            DocumentTokenizer(out, tokenizer_name_or_path=tokenizer, eos_token="<|endoftext|>",
                              shuffle_documents=False, save_final_metadata=False)]
start = time.process_time()
LocalPipelineExecutor(pipeline, tasks=1, workers=1, logging_dir=logs, skip_completed=False).run()
print(json.dumps({"seconds": time.process_time() - start}))
"""


def prepare(megabytes: float) -> tuple[str, str, list[str]]:
    """Corpus + 16k tokenizer under bench/work; returns (corpus, tokenizer, texts)."""
    corpus, tokenizer = os.path.join(WORK, "corpus"), os.path.join(WORK, "tokenizer")
    shutil.rmtree(WORK, ignore_errors=True)
    docs = stdlib_sources(int(megabytes * 1e6)) + documents()
    write_corpus(corpus, parts=4, docs=docs)
    train_tokenizer(corpus, tokenizer, vocab_size=16384, sample_bytes=8_000_000)
    texts = [t for part in corpus_parts(corpus) for (t,) in iter_rows(part, ["text"])]
    return corpus, tokenizer, texts


def corpus_parts(corpus: str) -> list[str]:
    data = CorpusLayout.at(corpus).data_dir
    return [os.path.join(data, name) for name in sorted(os.listdir(data))]


SMELT = """
import json, os, shutil, sys, time
from smelt.corpus.layout import CorpusLayout
from smelt.corpus.tables import iter_rows
from smelt.prep.shards import build_shards
from smelt.prep.tokenizer_files import load_tokenizer
kind, corpus, tokenizer, out = sys.argv[1:5]
if kind == "smelt":
    shutil.rmtree(out, ignore_errors=True)
    start = time.process_time()
    built = build_shards(corpus, tokenizer, out, val_fraction=0.01, workers=1)
    tokens = built.manifest.num_tokens()
    print(json.dumps({"seconds": time.process_time() - start, "tokens": tokens}))
else:  # the ceiling: the tokenizer alone on the same documents, already in memory
    data = CorpusLayout.at(corpus).data_dir
    parts = [os.path.join(data, name) for name in sorted(os.listdir(data))]
    texts = [t for p in parts for (t,) in iter_rows(p, ["text"])]
    tok = load_tokenizer(tokenizer)
    encode = tok.encode_batch_fast if kind.endswith("fast") else tok.encode_batch
    start = time.process_time()
    for i in range(0, len(texts), 512):
        encode(texts[i:i + 512], add_special_tokens=False)
    print(json.dumps({"seconds": time.process_time() - start, "tokens": None}))
"""


def run_measured(python: str, script: str, *args: str) -> dict:
    """Run one measurement in a fresh process (same start state for every contender)."""
    result = subprocess.run(
        [python, "-c", script, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{args[0] if args else python} failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def time_smelt_or_ceiling(kind: str, corpus: str, tokenizer: str) -> tuple[float, int | None]:
    out = os.path.join(WORK, "smelt-shards")
    found = run_measured(sys.executable, SMELT, kind, corpus, tokenizer, out)
    return found["seconds"], found["tokens"]


def time_datatrove(corpus: str, tokenizer: str) -> tuple[float, int]:
    out, logs = os.path.join(WORK, "datatrove-out"), os.path.join(WORK, "datatrove-logs")
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(logs, ignore_errors=True)
    result = subprocess.run(
        [
            PEER_PYTHON,
            "-c",
            DATATROVE,
            CorpusLayout.at(corpus).data_dir,
            TokenizerLayout.at(tokenizer).tokenizer,
            out,
            logs,
        ],
        capture_output=True,
        text=True,
        env={**os.environ},
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"datatrove failed: {result.stderr[-2000:]}")
    seconds = json.loads(result.stdout.strip().splitlines()[-1])["seconds"]
    token_bytes = sum(
        os.path.getsize(os.path.join(out, f)) for f in os.listdir(out) if f.endswith(".ds")
    )
    return seconds, token_bytes // 2  # uint16 ids below 65536 tokens of vocabulary


def loader_tokens_per_s(shards: str, batches: int = 300) -> tuple[float, float]:
    rates = []
    for doc_ids in (False, True):
        loader = ShardLoader(shards, batch_size=8, seq_len=1024, seed=0, with_doc_ids=doc_ids)
        loader.next_batch()  # first open: checksum verification, not steady state
        start = time.process_time()
        for _ in range(batches):
            loader.next_batch()
        rates.append(batches * 8 * 1024 / (time.process_time() - start))
        loader.close()
    return rates[0], rates[1]


def small_step_tokens_per_s(vocab_size: int, seq_len: int = 256, reps: int = 3) -> float | None:
    try:
        import torch

        from smelt.model import Decoder, get_preset
    except ImportError:
        return None
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = Decoder(get_preset("small", vocab_size=vocab_size))
    idx = torch.randint(0, vocab_size, (1, seq_len + 1))
    times = []
    for _ in range(reps + 1):
        start = time.perf_counter()
        model(idx[:, :-1], idx[:, 1:]).loss.backward()
        times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    return seq_len / statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=16.0, help="megabytes of text")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    corpus, tokenizer_dir, texts = prepare(args.mb)
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    tokenizer = load_tokenizer(tokenizer_dir)
    has_peer = os.path.exists(PEER_PYTHON)
    if not has_peer:
        print(
            f"datatrove skipped: {PEER_PYTHON} missing (run bench/setup_peer.sh)", file=sys.stderr
        )
    runs: dict[str, list[float]] = {
        "encode_batch": [],
        "encode_batch_fast": [],
        "smelt": [],
        "datatrove": [],
    }
    counts = {}
    for rep in range(args.reps):
        order = ["encode_batch", "encode_batch_fast", "smelt", "datatrove"]
        for name in order if rep % 2 == 0 else order[::-1]:
            if name == "datatrove":
                if not has_peer:
                    continue
                try:
                    seconds, counts["datatrove"] = time_datatrove(corpus, tokenizer_dir)
                except RuntimeError as exc:  # e.g. the peer venv lacks pyarrow for ParquetReader
                    print(f"datatrove skipped: {exc}", file=sys.stderr)
                    has_peer = False
                    continue
            else:
                seconds, tokens = time_smelt_or_ceiling(name, corpus, tokenizer_dir)
                if tokens is not None:
                    counts[name] = tokens
            runs[name].append(seconds)
    rate = {k: megabytes / statistics.median(v) for k, v in runs.items() if v}
    shards = os.path.join(WORK, "smelt-shards")
    plain, with_docs = loader_tokens_per_s(shards)
    step = small_step_tokens_per_s(tokenizer.get_vocab_size())

    print(
        f"Text: {megabytes:.1f} MB in {len(texts):,} documents, vocab 16384, 1 thread, "
        f"median of {args.reps}\n"
    )
    print("| pipeline | MB of text per CPU-second | vs encode_batch |")
    print("|---|---|---|")
    for name, label in (
        ("encode_batch", "ceiling: `Tokenizer.encode_batch` alone"),
        ("encode_batch_fast", "`Tokenizer.encode_batch_fast` alone"),
        ("smelt", "smelt `build_shards` (end to end)"),
        ("datatrove", "datatrove `DocumentTokenizer`"),
    ):
        if name in rate:
            print(f"| {label} | {rate[name]:.2f} | {rate[name] / rate['encode_batch']:.2f}x |")
    print(
        f"\nTokens written: smelt {counts.get('smelt', 0):,}, datatrove "
        f"{counts.get('datatrove', 'n/a'):,}"
        if "datatrove" in counts
        else ""
    )
    print("\n| loader | tokens per CPU-second |")
    print("|---|---|")
    print(f"| ShardLoader B=8 T=1024 | {plain:,.0f} |")
    print(f"| ShardLoader B=8 T=1024 + doc_ids | {with_docs:,.0f} |")
    if step:
        print(f"| `small` preset CPU step (fwd+bwd, 2 threads) consumes | {step:,.0f} |")
        print(
            f"\nLoader / training step: {plain / step:,.0f}x (with doc_ids "
            f"{with_docs / step:,.0f}x)"
        )
    print(
        "JSON: "
        + json.dumps(
            {
                "megabytes": megabytes,
                "mb_per_s": rate,
                "tokens": counts,
                "loader_tokens_per_s": plain,
                "loader_doc_ids_tokens_per_s": with_docs,
                "small_step_tokens_per_s": step,
                "runs_s": runs,
            }
        )
    )


if __name__ == "__main__":
    main()
