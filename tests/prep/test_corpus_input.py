"""A finished corpus as preparation reads it: identity from config.json, placeholders, errors."""

from __future__ import annotations

import json
import os

import pytest

from smelt.corpus.config import PiiConfig
from smelt.corpus.layout import CorpusLayout
from smelt.errors import InputError
from smelt.prep.corpus_input import open_corpus
from tests.shards.corpus_factory import write_corpus

CUSTOM = {"EMAIL_ADDRESS": "[MAIL]", "PERSON": "<NAME>", "PHONE_NUMBER": "[MAIL]"}


def test_identity_and_placeholders_come_from_config_json(tmp_path):
    write_corpus(str(tmp_path), parts=2, limit=30, placeholders=CUSTOM)
    corpus = open_corpus(str(tmp_path))
    record = json.loads((tmp_path / "config.json").read_text())
    assert corpus.identity == record["fingerprint"]
    assert corpus.placeholders == ("[MAIL]", "<NAME>")  # deduplicated, in recorded order
    assert [os.path.basename(p) for p in corpus.partitions] == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]


def test_a_corpus_without_config_json_is_known_by_its_files(tmp_path):
    write_corpus(str(tmp_path), parts=2, limit=30, with_config=False)
    corpus = open_corpus(str(tmp_path))
    assert corpus.placeholders == tuple(PiiConfig().placeholders.values())
    assert open_corpus(str(tmp_path)).identity == corpus.identity
    write_corpus(str(tmp_path), parts=2, limit=31, with_config=False)  # one document more
    assert open_corpus(str(tmp_path)).identity != corpus.identity


def test_a_foreign_config_json_is_refused_naming_it(tmp_path):
    write_corpus(str(tmp_path), parts=1, limit=5)
    config = CorpusLayout.at(str(tmp_path)).config
    with open(config, "w") as fh:
        fh.write("{not json")
    with pytest.raises(InputError, match="config.json: not valid JSON"):
        open_corpus(str(tmp_path))
    with open(config, "w") as fh:
        json.dump({"config": {"pii": {"placeholders": {"EMAIL_ADDRESS": ""}}}}, fh)
    with pytest.raises(InputError, match="pii.placeholders"):
        open_corpus(str(tmp_path))
