"""One mutant: a textual patch that breaks one behaviour, and the tests that must then fail."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


class StaleMutant(Exception):
    """The patch no longer applies, or a test it names no longer exists: update the catalog."""


@dataclass(frozen=True)
class Mutant:
    """Replace `old` (which must occur exactly once in `path`) by `new`; each of `tests` (pytest
    node ids) runs against the patched copy, and every one of them must fail."""

    name: str
    breaks: str  # the behaviour broken, as a reader of README would say it
    path: str  # relative to the repository root
    old: str
    new: str
    tests: tuple[str, ...]

    def problems(self, root: Path) -> list[str]:
        """What makes this entry stale in the tree at `root` (empty when it applies)."""
        found: list[str] = []
        source = root / self.path
        if not source.is_file():
            return [f"{self.name}: {self.path} does not exist"]
        count = source.read_text(encoding="utf-8").count(self.old)
        if count != 1:
            found.append(f"{self.name}: the text to replace occurs {count} times in {self.path}")
        if self.old == self.new:
            found.append(f"{self.name}: the patch changes nothing")
        if not self.tests:
            found.append(f"{self.name}: no test is named to catch it")
        for node in self.tests:
            file, _, name = node.partition("::")
            test_file = root / file
            if not test_file.is_file():
                found.append(f"{self.name}: test file {file} does not exist")
                continue
            function = name.split("::")[-1].split("[")[0]
            text = test_file.read_text(encoding="utf-8")
            if function and not re.search(rf"^\s*(async )?def {re.escape(function)}\(", text, re.M):
                found.append(f"{self.name}: no test {function} in {file}")
        return found

    def apply(self, root: Path) -> None:
        """Patch the copy of the tree at `root`."""
        problems = self.problems(root)
        if problems:
            raise StaleMutant("; ".join(problems))
        source = root / self.path
        source.write_text(
            source.read_text(encoding="utf-8").replace(self.old, self.new), encoding="utf-8"
        )
