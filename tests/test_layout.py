"""The layout rules of ARCHITECTURE.md, checked on the source: imports only point down the stack."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# deployments -> flows -> tasks -> (evaluation, sft, serving -> training -> prep, corpus, model,
# chat) -> storage; chat (the conversation format) sits low enough for data preparation, training
# and serving to import it; sft (fine-tuning) puts data preparation and training together.
LAYERS = {
    "storage": set(),
    "chat": {"storage"},
    "corpus": {"storage"},
    "prep": {"storage", "corpus", "chat"},
    "model": {"storage"},
    "training": {"storage", "model", "corpus", "prep", "chat"},
    "serving": {"storage", "model", "training", "prep", "chat"},
    "evaluation": {"storage", "model", "corpus", "prep", "training", "chat"},
    "sft": {"storage", "corpus", "prep", "training", "model", "chat"},
    "tasks": {
        "storage",
        "corpus",
        "prep",
        "training",
        "model",
        "chat",
        "serving",
        "evaluation",
        "sft",
    },
    "flows": {
        "storage",
        "corpus",
        "prep",
        "training",
        "model",
        "chat",
        "serving",
        "evaluation",
        "sft",
        "tasks",
    },
    "deployments": {
        "storage",
        "corpus",
        "prep",
        "training",
        "model",
        "chat",
        "serving",
        "evaluation",
        "sft",
        "tasks",
        "flows",
    },
}
SHARED = {"errors", "parallel", "__init__"}  # importable from every layer


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize(
    "package",
    ["storage", "corpus", "prep", "model", "training", "chat", "serving", "evaluation", "sft"],
)
def test_domain_code_imports_no_prefect(package: str) -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in _modules(package)
        if any(n == "prefect" or n.startswith(("prefect.", "prefect_")) for n in _imports(p))
    ]
    assert not offenders, f"domain code must stay plain, but these import prefect: {offenders}"


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_imports_point_down_the_stack(package: str) -> None:
    allowed = LAYERS[package] | {package} | SHARED
    offenders = []
    for path in _modules(package):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "smelt" and len(parts) > 1 and parts[1] not in allowed:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, "imports against the dependency direction:\n" + "\n".join(offenders)


# moto's in-process patching decorators, spelled in parts so this file does not name them
IN_PROCESS_PATCHING = tuple("mock" + suffix for suffix in ("_aws", "_s3")) + ("@" + "mock_",)


def test_tests_use_a_real_s3_server() -> None:
    patched = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").rglob("*.py")
        if any(word in p.read_text(encoding="utf-8") for word in IN_PROCESS_PATCHING)
    ]
    assert not patched, f"use moto in server mode over HTTP, not in-process patching: {patched}"


def test_every_package_directory_is_installed() -> None:
    """A subpackage missing from pyproject's list works in the editable install but is absent
    from a real one (the container image): list every directory that has an __init__.py."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {"smelt"}
    for init in ROOT.rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT)
        if (
            rel.parts
            and rel.parts[0] not in {"tests", "bench", ".venv"}
            and not rel.parts[0].startswith(".")
        ):
            found.add("smelt." + ".".join(rel.parts))
    assert found - listed == set(), f"add to [tool.setuptools] packages: {sorted(found - listed)}"
