"""`python -m tests.mutants [--only NAME ...] [--list] [--no-baseline] [--keep]`

1. every catalog entry must apply to the current tree (else: exit 2, naming the stale ones);
2. baseline: the union of the named tests must pass on an unpatched copy (a test that is
   already red would "catch" every mutant);
3. per mutant: a fresh copy of the working tree in a temporary directory, the patch applied,
   its tests run there with `PYTHONPATH` pointing at the copy, so that `import smelt` (and
   every subprocess the tests start) runs the patched code;
4. a table of the outcomes; exit 1 unless every named test of every mutant failed: a mutant
   *survives* when any of its tests stays green (passes or skips), and is an *error* when its
   run went wrong in another way (collection error, timeout).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from tests.mutants.catalog import MUTANTS
from tests.mutants.mutant import Mutant

ROOT = Path(__file__).resolve().parents[2]
PYTEST_OK, PYTEST_FAILED = 0, 1  # pytest's exit codes: all passed; tests ran and some failed
SKIPPED_NAMES = {"__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"}


@dataclass
class Outcome:
    """What became of one mutant, for the table."""

    mutant: str
    verdict: str  # "caught", "SURVIVED", "ERROR"
    seconds: float
    detail: str = ""


def working_tree_files(root: Path) -> list[Path]:
    """Tracked and untracked files that git does not ignore (the tree as it is being edited)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    files = [Path(name) for name in listed.split("\0") if name]
    return [f for f in files if (root / f).is_file() and not SKIPPED_NAMES & set(f.parts)]


def copy_tree(root: Path, into: Path) -> Path:
    """The working tree copied to `into/smelt` (the repository root is the `smelt` package, so
    `PYTHONPATH=into` makes `import smelt` find the copy)."""
    target = into / "smelt"
    for relative in working_tree_files(root):
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target / relative)
    return target


def copy_env(copy: Path) -> dict[str, str]:
    """The environment that runs the copy's code: its parent first on PYTHONPATH (checked: a
    run that imported another `smelt` would test nothing)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(copy.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
    }
    imported = subprocess.run(
        [sys.executable, "-c", "import smelt; print(smelt.__file__)"],
        env=env,
        cwd=copy,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if Path(imported).resolve().parent != copy.resolve():
        raise SystemExit(f"`import smelt` in the copy finds {imported}, not {copy}")
    return env


@dataclass
class TestRun:
    """pytest's exit code (None: timed out), each test item's result, and the output's tail."""

    code: int | None
    results: dict[str, str] = field(default_factory=dict)  # item -> passed/failed/error/skipped
    tail: str = ""

    @property
    def green(self) -> list[str]:
        return [item for item, result in self.results.items() if result in ("passed", "skipped")]

    @property
    def red(self) -> list[str]:
        return [item for item, result in self.results.items() if result in ("failed", "error")]


def run_pytest(copy: Path, tests: tuple[str, ...], timeout: float) -> TestRun:
    """Run `tests` in `copy`; every item's result from pytest's JUnit XML report."""
    report = copy / ".mutant-report.xml"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
        "-o",
        "junit_family=xunit1",
        *tests,
    ]
    try:
        done = subprocess.run(
            command, cwd=copy, env=copy_env(copy), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return TestRun(None, tail=output[-3000:])
    return TestRun(done.returncode, junit_results(report), (done.stdout + done.stderr)[-3000:])


def junit_results(report: Path) -> dict[str, str]:
    """{"file::name": result} from a JUnit XML report (empty when there is none)."""
    if not report.exists():
        return {}
    results = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        item = f"{case.get('file')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        if "failure" in kinds:
            results[item] = "failed"
        elif "error" in kinds:
            results[item] = "error"
        elif "skipped" in kinds:
            results[item] = "skipped"
        else:
            results[item] = "passed"
    return results


def first_failure(output: str) -> str:
    """The first `FAILED ...`/`ERROR ...` line of pytest's summary, shortened."""
    for line in output.splitlines():
        if line.startswith(("FAILED", "ERROR")):
            return line[:160]
    return ""


def run_mutant(mutant: Mutant, scratch: Path, timeout: float) -> Outcome:
    copy = copy_tree(ROOT, scratch / mutant.name)
    mutant.apply(copy)
    started = time.monotonic()
    run = run_pytest(copy, mutant.tests, timeout)
    seconds = time.monotonic() - started
    if run.code not in (PYTEST_OK, PYTEST_FAILED) or not run.results:
        what = "timed out" if run.code is None else f"pytest exit code {run.code}"
        last = run.tail.strip().splitlines()[-1:] or [""]
        return Outcome(mutant.name, "ERROR", seconds, f"{what}: {last[0][:160]}")
    if run.green:
        return Outcome(mutant.name, "SURVIVED", seconds, "still green: " + ", ".join(run.green))
    return Outcome(
        mutant.name, "caught", seconds, f"{len(run.red)} red; " + first_failure(run.tail)
    )


def baseline(mutants: list[Mutant], scratch: Path, timeout: float) -> None:
    """Every named test passes on the unpatched tree, or nothing below means anything."""
    tests = tuple(dict.fromkeys(t for m in mutants for t in m.tests))
    copy = copy_tree(ROOT, scratch / "baseline")
    print(f"baseline: {len(tests)} tests on the unpatched tree ...", flush=True)
    run = run_pytest(copy, tests, timeout * 2)
    if run.code != PYTEST_OK or run.red or not run.results:
        print(run.tail, file=sys.stderr)
        raise SystemExit("baseline: the named tests fail without any mutant; fix them first")
    skipped = [item for item, result in run.results.items() if result == "skipped"]
    if skipped:
        raise SystemExit(f"baseline: named tests skip, so they cannot catch anything: {skipped}")


def table(outcomes: list[Outcome], mutants: dict[str, Mutant]) -> str:
    lines = [
        "| mutant | breaks | verdict | s | first failure |",
        "|---|---|---|---:|---|",
    ]
    for o in outcomes:
        detail = o.detail.replace("|", "\\|")
        lines.append(
            f"| {o.mutant} | {mutants[o.mutant].breaks} | {o.verdict} | {o.seconds:.0f} "
            f"| {detail} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutants", description=__doc__)
    parser.add_argument("--only", action="append", default=[], metavar="NAME")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unpatched run")
    parser.add_argument("--keep", action="store_true", help="keep the patched copies")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per mutant")
    args = parser.parse_args(argv)

    by_name = {m.name: m for m in MUTANTS}
    unknown = sorted(set(args.only) - set(by_name))
    if unknown:
        parser.error(f"unknown mutant(s) {unknown}; --list shows them")
    chosen = [by_name[n] for n in args.only] if args.only else list(MUTANTS)
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.breaks}\n    {m.path}\n    " + "\n    ".join(m.tests))
        return 0
    stale = [problem for m in chosen for problem in m.problems(ROOT)]
    if stale:
        print("stale catalog entries (tests/mutants/catalog.py):", *stale, sep="\n  ")
        return 2

    scratch = Path(tempfile.mkdtemp(prefix="smelt-mutants-"))
    try:
        if not args.no_baseline:
            baseline(chosen, scratch, args.timeout)
        outcomes = []
        for mutant in chosen:
            print(f"{mutant.name}: {mutant.breaks} ...", flush=True)
            outcome = run_mutant(mutant, scratch, args.timeout)
            print(f"  {outcome.verdict} ({outcome.seconds:.0f}s) {outcome.detail}", flush=True)
            outcomes.append(outcome)
            if not args.keep:
                shutil.rmtree(scratch / mutant.name, ignore_errors=True)
    finally:
        if args.keep:
            print(f"patched copies kept under {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(table(outcomes, by_name))
    failed = [o.mutant for o in outcomes if o.verdict != "caught"]
    if failed:
        print(f"\n{len(failed)} of {len(outcomes)} mutants not caught: {', '.join(failed)}")
        return 1
    print(f"\nall {len(outcomes)} mutants caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
