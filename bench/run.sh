#!/usr/bin/env bash
# `make bench`: every benchmark, each comparing smelt with its named peer side by side in one run.
# Results print as markdown tables; BENCHMARKS.md records them with these exact commands.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p bench/results
# datatrove (the corpus peer) lives in its own venv: its extras pin an older trafilatura.
if [ ! -x .venv-bench/bin/python ]; then bash bench/setup_peer.sh; fi
# the language-ID and PDF peers: the `bench` extra
$PY -c "import lingua, py3langid, pdfminer" 2>/dev/null || .venv/bin/pip install -q -c constraints.txt -e '.[dev,bench]'
for script in corpus_bench quality_bench langid_bench pdf_bench nightly_bench dedup_bench pii_bench \
  shards_bench model_bench train_bench mixture_bench sft_bench serve_bench eval_bench limits_bench; do
  if [ -f "bench/$script.py" ]; then
    echo "== $script"
    $PY "bench/$script.py" "$@" | tee "bench/results/$script.md"
  fi
done
