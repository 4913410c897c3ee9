"""Corpus build benchmark: smelt versus datatrove on real HTML, Prefect's overhead, fixed costs.

Inputs (Debian packages, installed by bench/setup_peer.sh): the 530 HTML pages of Python's
documentation (`python3.11-doc`, 50.7 MB) and the 1,067 pages of the Rust books (`rust-doc`:
the book, reference, Rust by Example, nomicon, edition guide, embedded book, rustc and rustdoc
books, 31.6 MB), each copied flat into one folder. Both systems run the same stages:

    HTML -> trafilatura main-content extraction -> Gopher repetition -> Gopher quality -> C4
         -> FineWeb quality -> Parquet

with dedup and PII off, the same number of worker processes. Variants, each run in a fresh
process so that nothing is warm that a user's run would not find warm:

- `smelt-flow`: the `corpus-build` flow (what `smelt corpus build` runs), timed from the call
  to its return; the Prefect server is up before timing (a running `smelt server`);
- `smelt-direct`: the same `build_corpus` on the same warm process pool, without Prefect:
  the difference is Prefect's overhead;
- `datatrove`: a `LocalPipelineExecutor` in its own venv (its extras pin trafilatura 1.11),
  with a ten-line file reader (datatrove ships none for plain HTML files) and its spaCy word
  tokenizer (NLTK's punkt data cannot be downloaded here), timed around `executor.run()`;
- `cli-full` / `cli-one`: `smelt corpus build` end to end from the shell (interpreter start
  included) on the whole set and on one small page, with a `smelt server` running.

Runs alternate between variants; figures are medians (Prefect's overhead also as the median of
each rep's flow-minus-direct difference, the two run next to each other). CPU utilisation is the
process tree's CPU time (sampled every 0.1 s) over wall time times workers.

    .venv/bin/python bench/corpus_bench.py [--reps 5] [--workers 2] [--sets python,rust]
                                           [--json PREFIX]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
PEER_PYTHON = os.path.join(ROOT, ".venv-bench", "bin", "python")
SMELT = os.path.join(os.path.dirname(PY), "smelt")
RUST_BOOKS = (
    "book", "reference", "rust-by-example", "nomicon", "edition-guide", "embedded-book",
    "rustc", "rustdoc",
)  # fmt: skip
SETS = {
    "python": ("/usr/share/doc/python3.11/html", ["**/*.html"]),
    "rust": ("/usr/share/doc/rust-doc/html", ["*.html", *(f"{b}/**/*.html" for b in RUST_BOOKS)]),
}
NO_DEDUP_NO_PII = {"dedup": {"exact": False, "near": False}, "pii": {"enabled": False}}
CONFIG_TOML = "[dedup]\nexact = false\nnear = false\n[pii]\nenabled = false\n"

DATATROVE_SCRIPT = r"""
import json, sys, time
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers.base import BaseDiskReader
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter,
                                        GopherQualityFilter, GopherRepetitionFilter)
from datatrove.pipeline.writers import ParquetWriter

class HtmlFileReader(BaseDiskReader):
    "One document per HTML file (datatrove ships no plain-HTML-file reader)."
    name = "html files"

    def read_file(self, filepath):
        with self.data_folder.open(filepath, "r", encoding="utf-8", errors="replace") as fh:
            yield self.get_document_from_dict({"text": fh.read(), "id": filepath}, filepath, 0)

if __name__ == "__main__":  # the worker pool re-imports this module
    input_dir, output_dir, logs_dir, tasks, workers = sys.argv[1:6]
    pipeline = [
        HtmlFileReader(input_dir, glob_pattern="*.html"),
        Trafilatura(favour_precision=True, timeout=10.0),
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(filter_no_terminal_punct=True),
        FineWebQualityFilter(),
        ParquetWriter(output_dir),
    ]
    executor = LocalPipelineExecutor(pipeline=pipeline, tasks=int(tasks), workers=int(workers),
                                     logging_dir=logs_dir)
    started = time.perf_counter()
    stats = executor.run()
    wall = time.perf_counter() - started
    kept = int(sum(s.stats["total"].total for s in stats.stats if "Parquet" in s.name))
    print(json.dumps({"wall": wall, "kept": kept}))
"""


# ---- one run, in its own process ---------------------------------------------------------------


def run_smelt(variant: str, input_dir: str, output: str, workers: int) -> None:
    """Child process: one smelt build, printing {"wall", "kept"} as its last line."""
    from smelt.corpus.build import BuildRequest, build_corpus, preload_modules
    from smelt.corpus.config import config_from_dict
    from smelt.parallel import LocalExecutor

    if variant == "smelt-flow":
        from smelt.cli import api
        from smelt.cli.main import quiet_prefect

        # the flow runs as `smelt corpus build` runs it: the running smelt server, Prefect's
        # log records below WARNING neither printed nor sent
        quiet_prefect(debug=False)
        from smelt.flows.corpus_build import CorpusBuildParams, corpus_build

        api.ready()

        params = CorpusBuildParams(
            inputs=[input_dir], output=output, workers=workers, config_overrides=NO_DEDUP_NO_PII
        )
        started = time.perf_counter()
        summary = corpus_build(params)
    else:
        config = config_from_dict(NO_DEDUP_NO_PII)
        request = BuildRequest(inputs=[input_dir], output=output, config=config)
        started = time.perf_counter()
        with LocalExecutor(workers, preload_modules(config)) as pool:
            summary = build_corpus(request, pool)
    print(json.dumps({"wall": time.perf_counter() - started, "kept": summary["kept"]}))


class CpuSampler:
    """CPU seconds of a process tree, sampled (processes that end keep their last sample)."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.wait(0.1):
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                continue
            for proc in procs:
                try:
                    times = proc.cpu_times()
                    self.seen[proc.pid] = times.user + times.system
                except psutil.Error:
                    pass

    def stop(self, exclude: set[int]) -> float:
        self._stop.set()
        self._thread.join()
        return sum(cpu for pid, cpu in self.seen.items() if pid not in exclude)


def measure(command: list[str], env: dict[str, str], exclude: set[int]) -> dict:
    """Run `command`; its wall time (outside), CPU seconds and last-line JSON (if any)."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sampler = CpuSampler(proc.pid)
    out, err = proc.communicate()
    outside = time.perf_counter() - started
    cpu = sampler.stop(exclude)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command[:4])} failed:\n{err.decode()[-3000:]}")
    lines = out.decode().strip().splitlines()
    result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    result.setdefault("wall", outside)
    return {**result, "outside": outside, "cpu": cpu}


# ---- the benchmark -----------------------------------------------------------------------------


def stage_input(name: str, workdir: str) -> tuple[str, int, int]:
    root, patterns = SETS[name]
    pages = sorted(
        {p for pattern in patterns for p in glob.glob(f"{root}/{pattern}", recursive=True)}
    )
    if not pages:
        sys.exit(f"no HTML under {root}: run `bash bench/setup_peer.sh`")
    target = os.path.join(workdir, name)
    os.makedirs(target, exist_ok=True)
    for page in pages:
        shutil.copyfile(page, os.path.join(target, os.path.relpath(page, root).replace("/", "__")))
    return target, len(pages), sum(os.path.getsize(p) for p in pages)


def start_server(workdir: str) -> tuple[subprocess.Popen, dict[str, str]]:
    """A `smelt server` (no deployments) for the Prefect runs, up before any timing."""
    home = os.path.join(workdir, "prefect-home")
    env = {**os.environ, "PREFECT_HOME": home, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    port = 4300 + os.getpid() % 500
    server = subprocess.Popen(
        [SMELT, "server", "--no-deploy", "--port", str(port), "--home", home],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    record = os.path.join(home, "smelt-server.json")
    deadline = time.monotonic() + 300
    while not os.path.exists(record):
        if server.poll() is not None or time.monotonic() > deadline:
            sys.exit("smelt server did not start")
        time.sleep(0.5)
    return server, {**env, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}


def variants(input_dir: str, one_page: str, workers: int, workdir: str) -> dict:
    config = os.path.join(workdir, "no-dedup-no-pii.toml")
    with open(config, "w") as fh:
        fh.write(CONFIG_TOML)
    script = os.path.join(workdir, "datatrove_pipeline.py")
    with open(script, "w") as fh:
        fh.write(DATATROVE_SCRIPT)

    def smelt(variant: str):
        return lambda out: [PY, __file__, "--child", variant, input_dir, out, str(workers)]

    def cli(source: str):
        return lambda out: [SMELT, "corpus", "build", "--input", source, "--output", out,
                            "--config", config, "--workers", str(workers), "--no-progress"]  # fmt: skip

    return {
        "smelt-flow": smelt("smelt-flow"),
        "smelt-direct": smelt("smelt-direct"),
        "datatrove": lambda out: [
            PEER_PYTHON,
            script,
            input_dir,
            out,
            out + "-logs",
            str(4 * workers),
            str(workers),
        ],  # fmt: skip
        "cli-full": cli(input_dir),
        "cli-one": cli(one_page),
    }


def bench_set(name: str, reps: int, workers: int, workdir: str, env: dict, server_pids: set):
    input_dir, pages, size = stage_input(name, workdir)
    one = os.path.join(workdir, f"{name}-one")
    os.makedirs(one, exist_ok=True)
    smallest = min(glob.glob(f"{input_dir}/*.html"), key=lambda p: abs(os.path.getsize(p) - 20_000))
    shutil.copy(smallest, one)
    commands = variants(input_dir, one, workers, workdir)
    results: dict[str, list[dict]] = {variant: [] for variant in commands}
    order = list(commands)
    for rep in range(reps):
        for variant in order[rep % len(order) :] + order[: rep % len(order)]:
            out = os.path.join(workdir, f"out-{name}-{variant}-{rep}")
            run = measure(commands[variant](out), env, server_pids)
            results[variant].append(run)
            print(f"<!-- {name} rep {rep} {variant}: {run['wall']:.1f} s wall, "
                  f"{run['cpu']:.1f} s cpu, kept {run.get('kept')} -->", flush=True)  # fmt: skip
            shutil.rmtree(out, ignore_errors=True)
    return pages, size, results


def report(name: str, pages: int, size: int, results: dict, workers: int, reps: int) -> None:
    med = {v: statistics.median(r["wall"] for r in runs) for v, runs in results.items()}
    util = {
        v: statistics.median(r["cpu"] / (r["outside"] * workers) for r in runs)
        for v, runs in results.items()
    }
    print(
        f"\n### {name}: {pages} pages, {size / 1e6:.1f} MB, {workers} workers, median of {reps}\n"
    )
    print("| variant | wall s (runs) | median s | pages/s | CPU utilisation | kept |")
    print("|---|---|---:|---:|---:|---:|")
    for variant, runs in results.items():
        walls = ", ".join(f"{r['wall']:.1f}" for r in runs)
        rate = pages / med[variant] if variant != "cli-one" else 1 / med[variant]
        print(f"| {variant} | {walls} | {med[variant]:.1f} | {rate:.1f} | "
              f"{util[variant]:.0%} | {runs[0].get('kept', '')} |")  # fmt: skip
    # each rep runs flow and direct next to each other: the median of their differences is
    # less at the mercy of a slow minute than the difference of the two medians
    flow, direct = results["smelt-flow"], results["smelt-direct"]
    pairs = [f["wall"] - d["wall"] for f, d in zip(flow, direct, strict=True)]
    paired = statistics.median(pairs)
    print(
        f"\nsmelt flow / datatrove throughput: **{med['datatrove'] / med['smelt-flow']:.2f}x**; "
        f"Prefect overhead (flow vs direct): "
        f"**{(med['smelt-flow'] - med['smelt-direct']) / med['smelt-flow']:+.1%}** of wall time "
        f"by medians, **{paired / med['smelt-flow']:+.1%}** by the median of per-rep differences "
        f"({', '.join(f'{p:+.1f}' for p in pairs)} s); "
        f"one-file CLI build: **{med['cli-one']:.1f} s = {med['cli-one'] / med['cli-full']:.0%}** "
        f"of the full CLI build ({med['cli-full']:.1f} s)."
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        variant, input_dir, output, workers = sys.argv[2:6]
        run_smelt(variant, input_dir, output, int(workers))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sets", default="python,rust")
    parser.add_argument("--json", help="also write each set's raw runs to JSON.<set>.json")
    args = parser.parse_args()
    if not os.path.exists(PEER_PYTHON):
        sys.exit("no .venv-bench: run `bash bench/setup_peer.sh` first")
    workdir = tempfile.mkdtemp(prefix="smelt-corpus-bench-")
    server, env = start_server(workdir)
    import psutil

    server_pids = {
        server.pid,
        *(c.pid for c in psutil.Process(server.pid).children(recursive=True)),
    }
    try:
        print(f"load average before: {os.getloadavg()}")
        for name in args.sets.split(","):
            pages, size, results = bench_set(
                name, args.reps, args.workers, workdir, env, server_pids
            )
            report(name, pages, size, results, args.workers, args.reps)
            if args.json:
                with open(f"{args.json}.{name}.json", "w") as fh:
                    json.dump({"pages": pages, "size": size, "results": results}, fh)
        print(f"\nload average after: {os.getloadavg()}")
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
