#!/usr/bin/env bash
# smelt's GPU check on one NVIDIA GPU (written for an H100/H200 pod): installs torch 2.13.0 with
# CUDA from PyTorch's index and the project into .venv-gpu, then runs bench/gpu_check.py, which
# trains the `small` preset in bf16 with torch.compile (tokens/s, MFU), with document masking
# (FlexAttention), measures the checkpoint stall, kills and resumes a run, generates with the
# KV cache and exports to Hugging Face format, and prints one table. About 8 minutes, installs
# included; exit 0 when every row is ok.
#
#   bash bench/gpu_check.sh                          # a fresh machine with python3 and a GPU
#   SMELT_GPU_PYTHON=python bash bench/gpu_check.sh  # an environment that has CUDA torch + smelt
#   bash bench/gpu_check.sh --steps 100 --work /workspace/gpu-check   # flags go to gpu_check.py
#   SMELT_GPU_PYTHON=.venv/bin/python bash bench/gpu_check.sh --device cpu --tiny   # no GPU
#
# TORCH_INDEX picks the CUDA build (default cu126; cu130 for Blackwell GPUs).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

if [ -n "${SMELT_GPU_PYTHON:-}" ]; then
  python_bin=$SMELT_GPU_PYTHON
else
  venv=${SMELT_GPU_VENV:-.venv-gpu}
  index=${TORCH_INDEX:-https://download.pytorch.org/whl/cu126}
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q -U pip
  # torch first and alone, from PyTorch's CUDA index; the constraints then keep it
  "$venv/bin/pip" install -q --index-url "$index" torch==2.13.0
  "$venv/bin/pip" install -q -c constraints.txt -e .
  python_bin=$venv/bin/python
  echo "installed in $((SECONDS - started)) s"
fi

if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
status=0
"$python_bin" bench/gpu_check.py "$@" || status=$?
echo "gpu_check: $((SECONDS - started)) s in all, exit $status"
exit "$status"
