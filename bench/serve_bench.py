"""Serving benchmark: `smelt serve` tokens/s for 1 and 8 concurrent clients against
transformers' `generate` on the same model.

The model is a real run: pydoc topics -> corpus -> smelt tokenizer -> shards -> 2 training
steps of a preset (weights barely trained: the cost per token is what is measured). smelt
serves it as a separate process (`smelt serve`, one torch thread), the clients stream
`/v1/completions` over HTTP (token-id prompts of 32 tokens, 64 new tokens each, `ignore_eos`,
greedy); C clients each send R requests back to back. The peer is the exported model
(`smelt export-hf`) in transformers, one thread, `generate(do_sample=False,
min_new_tokens=max_new_tokens)` on the same prompts: batch 1 for one client, one batch of 8
for eight (static batching, no HTTP: an upper bound for a server built on it). Rounds alternate
smelt and transformers; medians are reported.

    .venv/bin/python bench/serve_bench.py                 # test preset, CPU
    .venv/bin/python bench/serve_bench.py --preset small --device cuda --rounds 5

Prints a markdown table and one JSON line (prefix `JSON: `).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import torch

REPO = Path(__file__).resolve().parents[1]


def build_run(root: Path, preset: str, vocab: int) -> Path:
    """A two-step training run of `preset` on the stdlib's pydoc topics."""
    from pydoc_data.topics import topics

    import pyarrow as pa
    import pyarrow.parquet as pq

    from smelt.prep.layout import TokenizerLayout
    from smelt.prep.shards import build_shards
    from smelt.prep.tokenizer import train_tokenizer

    texts = [t for k in sorted(topics) for t in topics[k].split("\n\n") if t.strip()]
    (root / "corpus" / "data").mkdir(parents=True)
    table = pa.table(
        {
            "id": [f"doc-{i}" for i in range(len(texts))],
            "text": texts,
            "source": ["pydoc"] * len(texts),
            "url": [None] * len(texts),
        }
    )
    pq.write_table(table, root / "corpus" / "data" / "part-00000.parquet")
    (root / "corpus" / "stats.json").write_text("{}")
    train_tokenizer(str(root / "corpus"), str(root / "tokenizer"), vocab_size=vocab)
    build_shards(str(root / "corpus"), str(root / "tokenizer"), str(root / "shards"), 0.05)
    run = root / "run"
    args = [
        *("--shards", str(root / "shards"), "--output", str(run), "--preset", preset),
        *("--tokenizer", TokenizerLayout.at(str(root / "tokenizer")).tokenizer),
        *("--max-steps", "2", "--batch-size", "2", "--seq-len", "128", "--num-threads", "1"),
        *("--checkpoint-every", "2", "--eval-every", "0"),
    ]
    subprocess.run(
        [sys.executable, "-m", "smelt.training.loop", *args],
        cwd=REPO,
        check=True,
        capture_output=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return run


def start_server(run: Path, port: int, max_batch: int, device: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "smelt.cli.main", "serve", "--checkpoint", str(run)]
        + ["--port", str(port), "--device", device, "--log-level", "warning"]
        + ["--max-batch", str(max_batch)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("smelt serve did not start")


def stream_request(
    http: httpx.Client, url: str, prompt: list[int], new_tokens: int
) -> tuple[int, float, float, str]:
    """(completion tokens, seconds to first token, total seconds, text) of one request."""
    body = {
        "prompt": prompt,
        "max_tokens": new_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first, tokens, text = None, 0, []
    with http.stream("POST", f"{url}/v1/completions", json=body, timeout=600) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif chunk["choices"] and chunk["choices"][0]["text"]:
                first = first or time.perf_counter() - started
                text.append(chunk["choices"][0]["text"])
    return tokens, first or 0.0, time.perf_counter() - started, "".join(text)


def smelt_round(url: str, prompts: list[list[int]], clients: int, per_client: int, new: int):
    results: list[tuple[int, float, float, str]] = []
    lock = threading.Lock()

    # one keep-alive connection per client, opened before the clock starts (as SDK clients
    # do): creating an httpx.Client costs tens of milliseconds of client CPU
    connections = [httpx.Client() for _ in range(clients)]
    for http in connections:
        http.get(f"{url}/health")

    def client(index: int) -> None:
        for r in range(per_client):
            prompt = prompts[(index + r * clients) % len(prompts)]
            out = stream_request(connections[index], url, prompt, new)
            with lock:
                results.append(out)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    for http in connections:
        http.close()
    tokens = sum(r[0] for r in results)
    return {
        "tokens_per_s": tokens / wall,
        "ttft_s": statistics.median(r[1] for r in results),
        "latency_s": statistics.median(r[2] for r in results),
        "texts": [r[3] for r in results],
    }


def hf_round(model, prompts: list[list[int]], batch: int, per_client: int, new: int):
    device = model.device
    tokens, started = 0, time.perf_counter()
    outputs = []
    for r in range(per_client):
        rows = [prompts[(i + r * batch) % len(prompts)] for i in range(batch)]
        with torch.no_grad():
            out = model.generate(
                torch.tensor(rows, device=device),
                attention_mask=torch.ones(len(rows), len(rows[0]), dtype=torch.long, device=device),
                do_sample=False,
                max_new_tokens=new,
                min_new_tokens=new,
                pad_token_id=0,
            )
        generated = out[:, len(rows[0]) :]
        tokens += generated.numel()  # .tolist() below waits for the device
        outputs.extend(generated.tolist())
    return {"tokens_per_s": tokens / (time.perf_counter() - started), "ids": outputs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="test")
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests-per-client", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--device", default="cpu", help="cpu or cuda, for both sides")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()

    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    from smelt.cli.main import main as smelt
    from smelt.training.checkpoint import RunLayout

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = build_run(root, args.preset, args.vocab)
        smelt(["export-hf", "--checkpoint", str(run), "--output", str(root / "hf")])
        hf = AutoModelForCausalLM.from_pretrained(root / "hf", attn_implementation="sdpa")
        hf = hf.to(args.device).eval()
        tokenizer = Tokenizer.from_file(RunLayout(str(run)).tokenizer)
        vocab = tokenizer.get_vocab_size()
        gen = torch.Generator().manual_seed(0)
        prompts = [
            torch.randint(300, vocab, (args.prompt_tokens,), generator=gen).tolist()
            for _ in range(8)
        ]
        server = start_server(run, args.port, max_batch=8, device=args.device)
        url = f"http://127.0.0.1:{args.port}"
        try:
            smelt_round(url, prompts, 1, 1, 4)  # warm up both
            hf_round(hf, prompts, 1, 1, 4)
            rows: dict[int, dict[str, list[float]]] = {}
            match = None
            for _ in range(args.rounds):
                for clients in (1, 8):
                    ours = smelt_round(
                        url, prompts, clients, args.requests_per_client, args.new_tokens
                    )
                    theirs = hf_round(
                        hf, prompts, clients, args.requests_per_client, args.new_tokens
                    )
                    row = rows.setdefault(clients, {"smelt": [], "hf": [], "ttft": [], "lat": []})
                    row["smelt"].append(ours["tokens_per_s"])
                    row["hf"].append(theirs["tokens_per_s"])
                    row["ttft"].append(ours["ttft_s"])
                    row["lat"].append(ours["latency_s"])
                    if clients == 1 and match is None:  # greedy: the same text from both
                        match = ours["texts"][0] == tokenizer.decode(theirs["ids"][0])
            health = httpx.get(f"{url}/health").json()
        finally:
            server.terminate()
            server.wait(timeout=30)
    load_after = os.getloadavg()

    import transformers

    cfg = hf.config
    params = sum(p.numel() for p in hf.parameters()) / 1e6
    print(
        f"`{args.preset}` ({params:.1f}M params, {type(hf).__name__}, vocab {vocab}), "
        f"{args.device}, "
        f"1 thread per side, prompt {args.prompt_tokens} + {args.new_tokens} new tokens, "
        f"{args.requests_per_client} requests per client, {args.rounds} rounds (medians); "
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{platform.processor() or platform.machine()}; load average {load_before[0]:.1f} "
        f"before, {load_after[0]:.1f} after\n"
    )
    print(
        "| clients | smelt serve tok/s | transformers generate tok/s | ratio | smelt TTFT | smelt latency |"
    )
    print("|---|---|---|---|---|---|")
    summary = {}
    for clients, row in rows.items():
        ours, theirs = statistics.median(row["smelt"]), statistics.median(row["hf"])
        summary[clients] = {"smelt_tok_s": ours, "hf_tok_s": theirs, "ratio": ours / theirs}
        print(
            f"| {clients} | {ours:.0f} | {theirs:.0f} (batch {clients}) | {ours / theirs:.2f}x "
            f"| {statistics.median(row['ttft']) * 1000:.0f} ms "
            f"| {statistics.median(row['lat']):.2f} s |"
        )
    print(
        f"\npeak batch in the engine: {health['peak_batch']}; greedy text equal to "
        f"transformers' for the first prompt: {match}"
    )
    record = {
        "preset": args.preset,
        "max_seq_len": cfg.max_position_embeddings,
        "results": summary,
        "peak_batch": health["peak_batch"],
        "greedy_match": match,
        "load": [load_before[0], load_after[0]],
    }
    print("JSON: " + json.dumps(record))


if __name__ == "__main__":
    main()
