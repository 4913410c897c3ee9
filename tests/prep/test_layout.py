"""The layouts of a tokenizer and a shard set: ARCHITECTURE.md's names, spelled in one place."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from smelt.prep.layout import ShardsLayout, TokenizerLayout

ROOT = Path(__file__).resolve().parents[2]
NAMES = {
    "tokenizer.json",
    "report.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "manifest.json",
    "build_report.json",
}
OTHER = re.compile(r"^\.(bin|idx)$|(^|/)shard_$|shard_\d{5}")  # shard paths
# files that may still spell them: the layouts; the Hugging Face export folder (model/ sits
# below prep/ and writes transformers' own names); the pipeline's records, which predate the
# layouts (prep.tokenizer.is_current and prep.shards.is_current replace them)
ALLOWED = {
    "prep/layout.py",
    "model/export_hf.py",  # the Hugging Face folder it writes (model may not import prep)
    "chat/template.py",  # TEMPLATE_FILE, the name prep's layout takes
    "evaluation/ablation.py",  # an ablation's own report.json (AblationLayout)
}


def test_shards_layout_is_the_design_contract(tmp_path):
    layout = ShardsLayout.at(str(tmp_path))
    assert layout.manifest == str(tmp_path / "manifest.json")
    assert layout.build_report == str(tmp_path / "build_report.json")
    assert layout.shard_path("train", 7) == "train/shard_00007.bin"
    assert layout.idx_path("val/shard_00000.bin") == "val/shard_00000.idx"
    assert layout.uri("val/shard_00000.bin") == str(tmp_path / "val" / "shard_00000.bin")
    assert ShardsLayout.at(layout.manifest) == layout
    assert ShardsLayout.at("s3://bucket/shards/").manifest == "s3://bucket/shards/manifest.json"
    assert layout.part_offsets(3, "val").startswith(layout.work_dir + "/")
    assert layout.part_tokens(3, "val").endswith("part-00003.val.bin")


def test_tokenizer_layout_is_the_design_contract(tmp_path):
    layout = TokenizerLayout.at(str(tmp_path))
    names = [layout.tokenizer, layout.report, layout.config, layout.special_tokens_map]
    assert [Path(n).name for n in names] == [
        "tokenizer.json",
        "report.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ]
    assert TokenizerLayout.at(layout.tokenizer) == layout
    assert TokenizerLayout.file_uri("s3://b/tok") == "s3://b/tok/tokenizer.json"
    assert TokenizerLayout.file_uri("s3://b/other.json") == "s3://b/other.json"


def _spelled_names(path: Path) -> list[str]:
    """String constants of the code (not docstrings) that are one of the artifacts' names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and (node.value in NAMES or OTHER.search(node.value))
    ]


def test_only_the_layouts_spell_the_file_names():
    offenders = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.split("/")[0] in {"tests", ".venv"} or rel.startswith(".") or rel in ALLOWED:
            continue
        if found := _spelled_names(path):
            offenders[rel] = found
    assert not offenders, f"ask ShardsLayout / TokenizerLayout instead: {offenders}"
