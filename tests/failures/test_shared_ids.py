"""Documents that share an id are different documents (the a/b/c.jsonl report): both are
processed, a real duplicate is removed by its text, and the published ids are unique."""

from __future__ import annotations

import json
import random

import pytest

from tests.corpus_build.conftest import read_corpus
from tests.failures.conftest import prose, smelt

FILTERS_OFF = """
[filters.gopher_repetition]
enabled = false
[filters.gopher_quality]
enabled = false
[filters.c4]
enabled = false
[filters.fineweb]
enabled = false
[pii]
ner = false
"""


@pytest.mark.slow
def test_documents_sharing_an_id_are_all_kept_with_unique_ids(tmp_path, prefect_api):
    rng = random.Random(3)
    t1, t2, t3, t4 = (prose(rng) for _ in range(4))
    raw = tmp_path / "raw"
    raw.mkdir()
    files = {
        "a.jsonl": {"id": "X", "text": t1},
        "b.jsonl": {"id": "X", "text": t2},  # unrelated to a's: must survive
        "c.jsonl": {"id": "Z", "text": t1 + " extra words"},  # a near duplicate of a's
        "d.jsonl": {"id": "Y", "text": t3},
        "e.jsonl": {"id": "Y", "text": t4},  # no duplicate at all: both kept, renamed
    }
    for name, record in files.items():
        (raw / name).write_text(json.dumps(record) + "\n")
    config = tmp_path / "build.toml"
    config.write_text(FILTERS_OFF)
    out = str(tmp_path / "corpus")
    args = ["corpus", "build", "--input", str(raw), "--output", out, "--config", str(config)]
    done = smelt([*args, "--no-progress"], prefect_api, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    words = {row["id"]: row["text"].split() for row in read_corpus(out)}
    assert words == {
        "Z": (t1 + " extra words").split(),  # the longest of the duplicate cluster stays
        "X": t2.split(),
        "Y": t3.split(),  # first by (partition, row): d.jsonl before e.jsonl
        "Y#2": t4.split(),
    }
    stats = json.loads((tmp_path / "corpus" / "stats.json").read_text())
    assert stats["input_docs"] == 5 and stats["kept"] == 4
    assert sum(stats["duplicates"].values()) == 1
    assert stats["id_collisions"] == 1
