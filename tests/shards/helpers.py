"""Reading shards back in tests: documents decoded from `.bin` + `.idx`."""

from __future__ import annotations

import json
import os

import numpy as np

from smelt.prep.tokenizer_files import load_tokenizer


def read_manifest(root: str) -> dict:
    with open(os.path.join(root, "manifest.json")) as fh:
        return json.load(fh)


def shard_docs(root: str, entry: dict) -> list[np.ndarray]:
    """Token arrays (with their trailing eos) of every document of one manifest entry."""
    tokens = np.fromfile(os.path.join(root, entry["path"]), dtype="<u4")
    ends = np.fromfile(os.path.join(root, entry["path"][:-4] + ".idx"), dtype="<u8")
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    return [tokens[s:e] for s, e in zip(starts, ends.astype(np.int64), strict=True)]


def decoded_texts(root: str, tokenizer_uri: str, split: str) -> list[str]:
    """Texts of a split's documents, in shard order, decoded without their eos."""
    tokenizer = load_tokenizer(tokenizer_uri)
    texts = []
    for entry in read_manifest(root)["shards"]:
        if entry["split"] == split:
            texts += [
                tokenizer.decode(d[:-1].tolist(), skip_special_tokens=False)
                for d in shard_docs(root, entry)
            ]
    return texts
