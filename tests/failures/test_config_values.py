"""A wrong config value is one line naming the key, the value and what is allowed, exit 2,
before anything is written: never an empty corpus, a silent default or a late traceback."""

from __future__ import annotations

import pytest

from tests.failures.conftest import assert_one_error, smelt

# (TOML, the key as the error names it, the value as the error shows it, what is allowed)
WRONG_VALUES = [
    ('[filters.gopher_quality]\nmin_doc_words = "fifty"', "filters.gopher_quality.min_doc_words", "'fifty'", "integer"),
    ('[normalize]\nunicode_form = "NFX"', "normalize.unicode_form", "'NFX'", "'NFC'"),
    ('[filters.c4]\nenabled = "no"', "filters.c4.enabled", "'no'", "boolean"),
    ("partition_bytes = 0", "partition_bytes", "0", "greater than or equal to 1024"),
    ("[dedup]\njaccard_threshold = -0.5", "dedup.jaccard_threshold", "-0.5", "greater than or equal to 0"),
    ("[filters.fineweb]\nshort_line_thr = -1", "filters.fineweb.short_line_thr", "-1", "greater than or equal to 0"),
    ("[dedup]\nnum_bands = 0", "dedup.num_bands", "0", "greater than or equal to 1"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("toml", "key", "value", "allowed"), WRONG_VALUES, ids=lambda v: str(v)[:24]
)
def test_a_wrong_config_value_is_one_line_before_anything_is_written(
    tmp_path, toml, key, value, allowed
):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "doc.txt").write_text("Some text that would be a document.")
    config = tmp_path / "build.toml"
    config.write_text(toml + "\n")
    out = tmp_path / "corpus"
    done = smelt(
        ["corpus", "build", "--input", str(raw), "--output", str(out), "--config", str(config)]
    )
    line = assert_one_error(done, str(config), key, value, allowed)
    assert f"setting {key} = {value}" in line or f"setting {key}: " in line
    assert not out.exists()
