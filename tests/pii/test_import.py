"""Loading the PII stage costs what it uses: presidio without `transformers` and `torch`, which
stay importable for the rest of the process."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
import smelt.corpus.pii
loaded = [name in sys.modules for name in ("transformers", "torch")]
import torch
import transformers
print(*loaded, torch.__name__, transformers.__name__)
"""


@pytest.mark.slow  # a fresh interpreter importing presidio
def test_presidio_loads_without_transformers_and_torch_which_stay_importable():
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False", "torch", "transformers"]
