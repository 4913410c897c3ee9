"""Dedup benchmark: MinHash signature throughput (smelt vs rensa's plain API vs datasketch vs
datatrove's signature stage) on the same real text, and the whole dedup at two corpus sizes with
the peak memory of each worker process.

Input: real English prose, Python's documentation topics (`pydoc_data.topics`) and the long
descriptions of the packages installed in .venv, cut into ~2 KB documents (random windows of
250-400 words). One thread per system (RAYON_NUM_THREADS=1): figures are per core. Rounds
alternate between systems; figures are medians. datatrove runs in its own venv (.venv-bench)
through a subprocess that times only its `MinhashDedupSignature.run`.

    .venv/bin/python bench/dedup_bench.py [--docs 3000] [--reps 3] [--sizes 10000,40000]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import importlib.metadata
import json
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import subprocess
import tempfile
import time

os.environ["RAYON_NUM_THREADS"] = "1"

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_PYTHON = os.path.join(ROOT, ".venv-bench", "bin", "python")

DATATROVE_SCRIPT = r"""
import json, sys, time, tempfile
from datatrove.data import Document
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
from datatrove.utils.word_tokenizers import SpaCyTokenizer
texts = json.load(open(sys.argv[1]))
bands, rows = int(sys.argv[2]), int(sys.argv[3])
config = MinhashConfig(num_buckets=bands, hashes_per_bucket=rows)
step = MinhashDedupSignature(tempfile.mkdtemp(), config=config, language=SpaCyTokenizer("en"))
docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
step.run(iter(docs[:20]), rank=1)  # warm up (tokenizer load)
start = time.perf_counter()
step.run(iter(docs), rank=0)  # signatures + sorted per-bucket files, as its stage 1 does
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def real_words() -> list[str]:
    """A stream of real English words from documentation installed on this machine."""
    from pydoc_data.topics import topics

    texts = list(topics.values())
    for dist in importlib.metadata.distributions():
        body = dist.metadata.get_payload() or dist.metadata.get("Description") or ""
        if len(body) > 2000:
            texts.append(body)
    return " ".join(texts).split()


def make_docs(count: int, seed: int, words: list[str]) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for _ in range(count):
        length = rng.randint(250, 400)
        start = rng.randrange(len(words) - length)
        docs.append(" ".join(words[start : start + length]))
    return docs


def mb(texts: list[str]) -> float:
    return sum(len(t.encode("utf-8")) for t in texts) / 1e6


# -- signature throughput -------------------------------------------------------------------


def run_smelt(texts: list[str], num_perm: int) -> float:
    from smelt.corpus.dedup.minhash import signatures

    start = time.perf_counter()
    for i in range(0, len(texts), 4096):
        signatures(texts[i : i + 4096], 5, num_perm, 1)
    return time.perf_counter() - start


def run_smelt_stage(texts: list[str]) -> float:
    """smelt's whole stage 1 on one partition: read Parquet, sign, write signatures + bands."""
    from smelt.corpus.config import DedupConfig
    from smelt.corpus.dedup import DedupLayout, sign_partition

    root = tempfile.mkdtemp(prefix="smelt-sign-bench-")
    try:
        path = os.path.join(root, "part-00000.parquet")
        pq.write_table(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}), path)
        start = time.perf_counter()
        sign_partition(path, DedupLayout.of(root), DedupConfig())
        return time.perf_counter() - start
    finally:
        shutil.rmtree(root, ignore_errors=True)


def python_ngrams(text: str) -> list[str]:
    from smelt.corpus.dedup.shingles import simplify

    words = simplify(text).split()
    return [" ".join(words[i : i + 5]) for i in range(max(len(words) - 4, 1))]


def run_rensa_plain(texts: list[str], num_perm: int) -> float:
    import rensa

    start = time.perf_counter()
    for text in texts:
        sketch = rensa.RMinHash(num_perm=num_perm, seed=1)
        sketch.update(python_ngrams(text))
        sketch.digest()
    return time.perf_counter() - start


def run_datasketch(texts: list[str], num_perm: int) -> float:
    from datasketch import MinHash

    start = time.perf_counter()
    for text in texts:
        sketch = MinHash(num_perm=num_perm, seed=1)
        sketch.update_batch([g.encode("utf-8") for g in python_ngrams(text)])
    return time.perf_counter() - start


def run_datatrove(texts: list[str], bands: int, rows: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(texts, fh)
    try:
        out = subprocess.run(
            [PEER_PYTHON, "-c", DATATROVE_SCRIPT, fh.name, str(bands), str(rows)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "RAYON_NUM_THREADS": "1"},
        )
    finally:
        os.remove(fh.name)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def signature_table(texts: list[str], reps: int) -> list[str]:
    small = texts[: max(200, len(texts) // 6)]  # datasketch is ~50x slower: fewer documents
    systems = {
        "smelt (rensa bulk + numpy shingles), 160 perm": (texts, lambda t: run_smelt(t, 160)),
        "smelt, 112 perm": (texts, lambda t: run_smelt(t, 112)),
        "smelt sign_partition stage (Parquet in, signatures + bands out), 160 perm": (
            texts,
            run_smelt_stage,
        ),
        "rensa RMinHash per doc, Python n-grams, 160 perm": (
            texts,
            lambda t: run_rensa_plain(t, 160),
        ),
        "datasketch MinHash, 160 perm": (small, lambda t: run_datasketch(t, 160)),
    }
    if os.path.exists(PEER_PYTHON):
        systems["datatrove MinhashDedupSignature 14x8 (112)"] = (
            texts,
            lambda t: run_datatrove(t, 14, 8),
        )
        systems["datatrove MinhashDedupSignature 20x8 (160)"] = (
            texts,
            lambda t: run_datatrove(t, 20, 8),
        )
    timings: dict[str, list[float]] = {name: [] for name in systems}
    for name, (docs, fn) in systems.items():
        if not name.startswith("datatrove"):  # warm up: imports, tables (datatrove: in-script)
            fn(docs[:50])
    for _ in range(reps):
        for name, (docs, fn) in systems.items():
            timings[name].append(fn(docs))
    peer = "datatrove MinhashDedupSignature 14x8 (112)"
    peer_rate = (mb(texts) / statistics.median(timings[peer])) if peer in timings else None
    lines = [
        "| system | docs | MB | median s | MB/s per core | docs/s | vs datatrove 14x8 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (docs, _) in systems.items():
        seconds = statistics.median(timings[name])
        rate = mb(docs) / seconds
        ratio = f"{rate / peer_rate:.1f}x" if peer_rate else "n/a"
        lines.append(
            f"| {name} | {len(docs)} | {mb(docs):.1f} | {seconds:.2f} | {rate:.2f} | "
            f"{len(docs) / seconds:,.0f} | {ratio} |"
        )
    return lines


# -- whole dedup, peak memory per worker -----------------------------------------------------


def corpus_with_duplicates(count: int, words: list[str], seed: int) -> tuple[list, dict]:
    """Rows (id, text): 75% originals (words drawn from the real-prose stream, so unrelated to
    each other), 20% near copies (last 3% of words replaced), 5% exact copies; returns rows and
    the planted counts."""
    rng = random.Random(seed)
    originals = [
        " ".join(rng.choices(words, k=rng.randint(250, 400))) for _ in range(int(count * 0.75))
    ]
    rows = [(f"doc{i:07d}", text) for i, text in enumerate(originals)]
    near = int(count * 0.20)
    for i in range(near):
        base = originals[rng.randrange(len(originals))].split()
        cut = int(len(base) * 0.97)
        rows.append((f"near{i:07d}", " ".join(base[:cut] + rng.sample(words, len(base) - cut))))
    exact = count - len(rows)
    for i in range(exact):
        rows.append((f"exact{i:07d}", originals[rng.randrange(len(originals))]))
    rng.shuffle(rows)
    return rows, {"near": near, "exact": exact}


def _peak_mb() -> float:
    """This process's own peak RSS (VmHWM; ru_maxrss would carry the parent's peak over exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sign(args):
    from smelt.corpus.dedup import sign_partition

    manifest = sign_partition(*args)
    return manifest, _peak_mb()


def _pairs(args):
    from smelt.corpus.dedup import find_pairs

    return find_pairs(*args), _peak_mb()


def _removals(args):
    from smelt.corpus.dedup import write_removals

    return write_removals(*args), _peak_mb()


def whole_dedup(docs: int, words: list[str], partition_docs: int, max_range_rows: int) -> dict:
    from smelt.corpus.config import DedupConfig
    from smelt.corpus.dedup.layout import DedupLayout
    from smelt.corpus.dedup.plan import range_count, shards

    config = DedupConfig(max_range_rows=max_range_rows, bucket_partitions=4)
    root = tempfile.mkdtemp(prefix="smelt-dedup-bench-")
    try:
        rows, planted = corpus_with_duplicates(docs, words, seed=docs)
        parts = []
        for index, start in enumerate(range(0, len(rows), partition_docs)):
            chunk = rows[start : start + partition_docs]
            path = os.path.join(root, "extracted", f"part-{index:05d}.parquet")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            pq.write_table(
                pa.table({"id": [r[0] for r in chunk], "text": [r[1] for r in chunk]}), path
            )
            parts.append(path)
        out, work = os.path.join(root, "out"), os.path.join(root, "work")
        names = [os.path.basename(p)[:-8] for p in parts]
        peaks: dict[str, float] = {}
        start = time.perf_counter()
        total_mb = mb([r[1] for r in rows])
        del rows  # workers are spawned fresh (not forked), one per task: their peak is their own
        ctx = cf.ProcessPoolExecutor(
            max_workers=2, max_tasks_per_child=1, mp_context=multiprocessing.get_context("spawn")
        )
        layout = DedupLayout.of(out, work)
        with ctx as pool:
            signed = list(pool.map(_sign, [(p, layout, config) for p in parts]))
            peaks["signatures"] = max(peak for _, peak in signed)
            count = range_count(sum(m["band_rows"] for m, _ in signed), config)
            all_shards = shards(layout, names, [])
            found = list(
                pool.map(
                    _pairs,
                    [(i, count, all_shards, layout, config) for i in range(count)],
                )
            )
            peaks["pairs"] = max(peak for _, peak in found)
            (uris, summary), peaks["removals"] = pool.submit(
                _removals, ([m["uri"] for m, _ in found], names, layout.removals)
            ).result()
        seconds = time.perf_counter() - start
        return {
            "docs": docs,
            "mb": total_mb,
            "partitions": len(parts),
            "ranges": count,
            "seconds": seconds,
            "peaks": peaks,
            "planted": planted,
            "removed": summary["removed"],
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sizes", default="10000,40000")
    parser.add_argument("--partition-docs", type=int, default=2500)
    parser.add_argument("--max-range-rows", type=int, default=50_000)
    parser.add_argument("--skip-signatures", action="store_true")
    args = parser.parse_args()
    words = real_words()
    texts = make_docs(args.docs, 0, words)
    if not args.skip_signatures:
        signature_section(texts, args.reps)
    whole_section(words, args)


def signature_section(texts: list[str], reps: int) -> None:
    print(
        f"## MinHash signatures: {len(texts)} docs, {mb(texts):.1f} MB of real prose, "
        f"1 thread, median of {reps}\n"
    )
    print("\n".join(signature_table(texts, reps)))


def whole_section(words: list[str], args: argparse.Namespace) -> None:
    print(
        f"\n## Whole dedup (2 worker processes, {args.partition_docs} docs per partition, "
        f"<= {args.max_range_rows:,} band rows per key range)\n"
    )
    print(
        "| docs | MB | partitions | key ranges | wall s | peak RSS MB per worker: "
        "signatures / pairs / removals | planted copies | removed near+exact |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for size in [int(s) for s in args.sizes.split(",")]:
        r = whole_dedup(size, words, args.partition_docs, args.max_range_rows)
        p = r["peaks"]
        print(
            f"| {r['docs']:,} | {r['mb']:.0f} | {r['partitions']} | {r['ranges']} | "
            f"{r['seconds']:.1f} | {p['signatures']:.0f} / {p['pairs']:.0f} / "
            f"{p['removals']:.0f} | {r['planted']['near'] + r['planted']['exact']} | "
            f"{r['removed']['near']}+{r['removed']['exact']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
