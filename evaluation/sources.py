"""Where task rows and texts come from: files behind a URI, or the Hugging Face Hub.

A task URI is
- a JSONL (`.jsonl`, `.json` with one object per line) or Parquet file, local or `s3://`;
- a directory laid out as the Hub publishes data sets (`CONFIG/SPLIT-*.parquet`,
  `CONFIG/SPLIT/*.parquet`, `data/SPLIT-*.parquet`, `SPLIT.jsonl`, ...): the files of the split
  the harness scores for that set (validation or test) are read;
- `hf://datasets/OWNER/NAME[/CONFIG[/SPLIT]]`, or just `hub` for a published set: the Parquet
  files of that split are downloaded from the Hub's Parquet conversion into the Hugging Face
  cache (network needed once), then read like a local directory.

A text URI is plain text (one document: the whole file), JSONL with a `text` field, or Parquet
with a `text` column (a corpus partition, say).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Any

from smelt import storage
from smelt.errors import InputError
from smelt.evaluation.items import Task, TextDoc, TextSet
from smelt.evaluation.layouts import HubSource, layout_for, parse_rows

log = logging.getLogger(__name__)

HUB_PREFIX = "hf://datasets/"
HUB_WORD = "hub"  # `--task hellaswag=hub`: the set's published Hub location
PARQUET_REVISION = "refs/convert/parquet"  # the Hub's Parquet export of every public data set
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
DATA_SUFFIXES = (".parquet", *JSONL_SUFFIXES)


def load_task(name: str, uri: str, limit: int | None = None) -> Task:
    """The task `name` read from `uri` (see the module docstring for what `uri` may be)."""
    files = resolve_task_files(name, uri)
    return parse_rows(name, _numbered_rows(files), uri, limit)


def load_texts(name: str, uri: str, limit: int | None = None) -> TextSet:
    """The documents of a text set; empty documents are skipped, an empty file is an error."""
    storage.require_readable(uri)
    lower = uri.lower()
    if lower.endswith(".parquet"):
        texts: list[Any] = [row.get("text") for row in _parquet_rows(uri)]
    elif lower.endswith(JSONL_SUFFIXES):
        texts = [_text_field(uri, number, row) for number, row in _jsonl_rows(uri)]
    else:
        texts = [_decode(uri, storage.read_bytes(uri))]
    docs = tuple(TextDoc(text) for text in texts if isinstance(text, str) and text.strip())
    if not docs:
        raise InputError(
            f"{uri}: empty text file (no non-blank text to score for {name!r}); give a file "
            "with some text"
        )
    return TextSet(name, docs[:limit] if limit else docs, uri)


# ---- files of a task -----------------------------------------------------------------------


def resolve_task_files(name: str, uri: str) -> list[str]:
    """The data files behind a task URI, in order."""
    if uri == HUB_WORD or uri.startswith(HUB_PREFIX):
        source = hub_source(name, uri)
        return split_files(download_hub(source), source.split)
    if storage.is_dir(uri):
        hub = layout_for(name).hub
        split = hub.split if hub else "test"
        return split_files(uri, split)
    storage.require_readable(uri)
    if not uri.lower().endswith(DATA_SUFFIXES):
        raise InputError(
            f"task file {uri}: unknown format; give JSONL (.jsonl) or Parquet (.parquet) rows"
        )
    return [uri]


def split_files(root: str, split: str) -> list[str]:
    """The data files of `split` under a directory in the Hub's layouts, or its only file."""
    base = storage.normalize(root)
    files = [f for f in storage.list_files(root) if f.lower().endswith(DATA_SUFFIXES)]
    chosen = [f for f in files if _in_split(f[len(base) :].lstrip("/"), split)]
    if not chosen and len(files) == 1:
        chosen = files
    if not chosen:
        raise InputError(
            f"no {split!r} split under {root}: expected files such as {split}.jsonl, "
            f"{split}-00000-of-00001.parquet or {split}/0000.parquet; point --task at the file"
        )
    return sorted(chosen)


def _in_split(path: str, split: str) -> bool:
    """`validation/0000.parquet`, `validation-00000-of-00001.parquet`, `arc-validation.jsonl`"""
    parts = path.split("/")
    stem = parts[-1].split(".")[0]
    return (
        split in parts[:-1]
        or stem == split
        or stem.startswith(split + "-")
        or stem.endswith("-" + split)
    )


def hub_source(name: str, uri: str) -> HubSource:
    """`hub` or `hf://datasets/OWNER/NAME[/CONFIG[/SPLIT]]` -> repository, config, split."""
    default = layout_for(name).hub
    if uri == HUB_WORD:
        if default is None:
            raise InputError(
                f"--task {name}=hub: {name!r} is not a published set; give "
                "hf://datasets/OWNER/NAME[/CONFIG[/SPLIT]] or a file"
            )
        return default
    parts = [p for p in uri[len(HUB_PREFIX) :].split("/") if p]
    if len(parts) < 2:
        raise InputError(f"{uri}: expected hf://datasets/OWNER/NAME[/CONFIG[/SPLIT]]")
    repo = "/".join(parts[:2])
    config = parts[2] if len(parts) > 2 else (default.config if default else "default")
    split = parts[3] if len(parts) > 3 else (default.split if default else "test")
    return HubSource(repo, config, split)


def download_hub(source: HubSource) -> str:
    """A local folder with the Parquet files of `source`'s split (cached by huggingface_hub)."""
    from huggingface_hub import snapshot_download

    patterns = [f"{source.config}/{source.split}/*.parquet", f"{source.config}/*{source.split}*"]
    try:
        folder = snapshot_download(
            source.repo,
            repo_type="dataset",
            revision=PARQUET_REVISION,
            allow_patterns=patterns,
        )
    except Exception as exc:  # network, authentication, unknown repository
        raise InputError(
            f"cannot fetch {source.repo} ({source.config}/{source.split}) from the Hugging Face "
            f"Hub: {exc}; download the split's files and pass the file instead"
        ) from exc
    return os.path.join(folder, source.config)


# ---- rows ----------------------------------------------------------------------------------


def _numbered_rows(files: list[str]) -> Iterator[tuple[int, Any]]:
    """(row number, row) over every file; numbers restart per file, as editors show them."""
    for uri in files:
        if uri.lower().endswith(".parquet"):
            yield from enumerate(_parquet_rows(uri), start=1)
        else:
            yield from _jsonl_rows(uri)


def _parquet_rows(uri: str) -> list[dict[str, Any]]:
    from smelt.corpus.tables import read_table

    try:
        return read_table(uri).to_pylist()
    except (OSError, ValueError) as exc:
        raise InputError(f"{uri}: not a readable Parquet file ({exc})") from exc


def _jsonl_rows(uri: str) -> Iterator[tuple[int, Any]]:
    text = _decode(uri, storage.read_bytes(uri))
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{uri} line {number}: invalid JSON ({exc.msg})") from None


def _text_field(uri: str, number: int, row: Any) -> str:
    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
        raise InputError(f"{uri} line {number}: expected an object with a 'text' string")
    return row["text"]


def _decode(uri: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{uri}: not UTF-8 text (byte {exc.start})") from None
