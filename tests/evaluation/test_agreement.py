"""smelt's scores equal lm-evaluation-harness 0.4's on the same exported model and items.

The harness runs for real (in a child process, offline) on the folder `smelt export-hf` wrote,
with its own task definitions of HellaSwag, ARC, PIQA, Winogrande, BoolQ and LAMBADA pointed
at the same local files smelt reads; the generic layout and the text set get minimal harness
definitions. Accuracies must match count for count, bits per byte within 0.5%.

Slow: the harness's import and dataset building add ~30 s of CPU (60-100 s wall on a shared
2-core machine) to the model both sides score.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from smelt.cli.main import main
from smelt.evaluation.evaluator import EvalInputs, EvalSettings, evaluate_checkpoint
from tests.evaluation.reference import run_reference, write_task_yamls

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def both(trained_run: Path, task_files, tmp_path_factory: pytest.TempPathFactory):
    tasks, texts = task_files
    work = tmp_path_factory.mktemp("agreement")
    folder = work / "hf"
    assert main(["export-hf", "--checkpoint", str(trained_run), "--output", str(folder)]) == 0
    names = write_task_yamls(work / "yaml", tasks, texts)
    reference = run_reference(folder, work / "yaml", list(names.values()), work)
    inputs = EvalInputs.load(
        {k: str(v) for k, v in tasks.items()}, {k: str(v) for k, v in texts.items()}
    )
    # another batch size than the harness's 16: padding must not change a score
    ours = evaluate_checkpoint(str(trained_run), inputs, EvalSettings(batch_size=7, val_batches=0))
    return ours, reference, names


def _count(rate: float, n: int) -> int:
    return round(rate * n)


def test_accuracies_equal_the_harness_count_for_count(both) -> None:
    ours, reference, names = both
    checked = 0
    for name, mine in ours["tasks"].items():
        theirs = reference["results"][names[name]]
        n = len(reference["samples"][names[name]])
        assert mine["n"] == n, name
        assert _count(mine["acc"], n) == _count(theirs["acc"], n), (name, mine, theirs)
        if "acc_norm" in theirs:
            assert _count(mine["acc_norm"], n) == _count(theirs["acc_norm"], n), (name, mine)
            checked += 1
    assert checked == len(ours["tasks"]) - 1  # every task but LAMBADA has acc_norm there
    lambada = reference["results"][names["lambada"]]
    assert ours["tasks"]["lambada"]["perplexity"] == pytest.approx(lambada["perplexity"], rel=1e-4)


def test_log_likelihoods_equal_the_harness_request_by_request(both) -> None:
    """Stronger than the counts: every choice's log-likelihood, before any argmax."""
    ours_json, reference, names = both
    from smelt.evaluation.scorer import Scorer
    from smelt.training.inference import open_checkpoint

    opened = open_checkpoint(ours_json["checkpoint"])
    scorer = Scorer(opened.model, opened.tokenizer, batch_size=5)
    inputs = EvalInputs.load({"generic_mc": ours_json["tasks"]["generic_mc"]["source"]}, {})
    items = inputs.tasks[0].items
    scores = scorer.loglikelihood([r for item in items for r in item.requests])
    theirs = sorted(reference["samples"][names["generic_mc"]], key=lambda s: s["doc_id"])
    flat = [resp[0] for sample in theirs for resp in sample["resps"]]
    assert [s.loglikelihood for s in scores] == pytest.approx(flat, abs=2e-3)
    assert len(set(round(s.loglikelihood, 2) for s in scores)) > len(scores) // 2  # not degenerate


def test_bits_per_byte_within_half_a_percent_of_the_harness(both) -> None:
    ours, reference, names = both
    mine = ours["bits_per_byte"]["pydoc"]
    theirs = reference["results"][names["pydoc"]]["bits_per_byte"]
    assert math.isfinite(mine) and mine > 0
    assert mine == pytest.approx(theirs, rel=0.005)
    assert ours["texts"]["pydoc"]["tokens"] > 3 * 64  # several rolling windows were scored
