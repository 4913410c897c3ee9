"""`make mutants` itself: every catalog entry still applies to the tree, a mutant changes only its
copy of the tree, and the runner tells a caught mutant from a surviving one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mutants.__main__ import ROOT, copy_env, copy_tree, run_mutant
from tests.mutants.catalog import MUTANTS
from tests.mutants.mutant import Mutant, StaleMutant

CHEAP_TEST = "tests/storage/test_stage.py::test_fingerprints_are_canonical"


def test_every_mutant_applies_to_the_tree_and_names_existing_tests() -> None:
    assert len({m.name for m in MUTANTS}) == len(MUTANTS), "mutant names are unique"
    problems = [problem for mutant in MUTANTS for problem in mutant.problems(ROOT)]
    assert problems == [], "update tests/mutants/catalog.py:\n" + "\n".join(problems)


def test_a_mutant_changes_its_copy_only(tmp_path: Path) -> None:
    mutant = MUTANTS[0]
    original = (ROOT / mutant.path).read_text()
    copy = copy_tree(ROOT, tmp_path)
    mutant.apply(copy)
    assert mutant.new in (copy / mutant.path).read_text()
    assert (ROOT / mutant.path).read_text() == original
    copy_env(copy)  # raises unless `import smelt` finds the copy
    with pytest.raises(StaleMutant, match="occurs 0 times"):
        mutant.apply(copy)  # already applied: the text to replace is gone


@pytest.mark.slow  # two pytest runs in copies of the tree
def test_the_runner_tells_caught_from_survived(tmp_path: Path) -> None:
    caught = Mutant(
        name="fingerprint-ignores-order",
        breaks="fingerprints depend on key order",
        path="storage/stage.py",
        old="blob = json.dumps(parts, sort_keys=True,",
        new="blob = json.dumps(parts, sort_keys=False,",
        tests=(CHEAP_TEST,),
    )
    harmless = Mutant(
        name="comment-only",
        breaks="nothing (a comment changes)",
        path="storage/stage.py",
        old='"""Resumable stages:',
        new='"""Resumable stages (a docstring edit):',
        tests=(CHEAP_TEST,),
    )
    assert run_mutant(caught, tmp_path, timeout=300).verdict == "caught"
    assert run_mutant(harmless, tmp_path, timeout=300).verdict == "SURVIVED"
