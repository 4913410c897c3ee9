"""Reading a run's data plan: `--shards URI[=WEIGHT]`, `--data FILE` (YAML, TOML), and the
errors a user gets for a plan that cannot be trained."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smelt.errors import ConfigError
from smelt.training.config import TrainConfig
from smelt.training.data_plan import (
    PhaseSpec,
    SourceSpec,
    load_data_file,
    parse_source,
    parse_token_count,
    plan_from_dict,
    plan_from_shards,
)

YAML_PLAN = """
on_exhausted: end_phase
phases:
  - name: cosmopedia
    seq_len: 512
    until_tokens: 2M
    sources: [s3://lake/shards/cosmopedia]
  - name: edu
    seq_len: 1024
    until_tokens: 6_000_000
    on_exhausted: repeat
    sources:
      - {uri: s3://lake/shards/main, weight: 0.8}
      - "s3://lake/shards/nightly/*=0.2"
  - name: python
    sources: [s3://lake/shards/python-edu]
"""

TOML_PLAN = """
on_exhausted = "end_phase"

[[phases]]
name = "cosmopedia"
seq_len = 512
until_tokens = "2M"
sources = ["s3://lake/shards/cosmopedia"]

[[phases]]
name = "edu"
seq_len = 1024
until_tokens = 6_000_000
on_exhausted = "repeat"
sources = [{uri = "s3://lake/shards/main", weight = 0.8}, "s3://lake/shards/nightly/*=0.2"]

[[phases]]
name = "python"
sources = ["s3://lake/shards/python-edu"]
"""

EXPECTED = (
    PhaseSpec(
        "cosmopedia", (SourceSpec("s3://lake/shards/cosmopedia"),), 2_000_000, 512, "end_phase"
    ),
    PhaseSpec(
        "edu",
        (SourceSpec("s3://lake/shards/main", 0.8), SourceSpec("s3://lake/shards/nightly/*", 0.2)),
        6_000_000,
        1024,
        "repeat",
    ),
    PhaseSpec("python", (SourceSpec("s3://lake/shards/python-edu"),), None, None, "end_phase"),
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3://lake/shards/main", SourceSpec("s3://lake/shards/main")),
        ("s3://lake/shards/main=0.7", SourceSpec("s3://lake/shards/main", 0.7)),
        ("shards/nightly/*=3", SourceSpec("shards/nightly/*", 3.0)),
        ("s3://lake/date=2026-11-30", SourceSpec("s3://lake/date=2026-11-30")),
        ("s3://lake/date=2026-11-30=2", SourceSpec("s3://lake/date=2026-11-30", 2.0)),
    ],
)
def test_a_source_is_a_uri_with_an_optional_weight(text: str, expected: SourceSpec) -> None:
    assert parse_source(text) == expected


@pytest.mark.parametrize("weight", ["0", "-1", "-0.5", "nan", "inf"])
def test_a_weight_must_be_positive(weight: str) -> None:
    with pytest.raises(ConfigError, match=f"--shards shards/a={weight}: weight .* positive"):
        parse_source(f"shards/a={weight}")


@given(st.floats(min_value=1e-6, max_value=1e6))
def test_any_positive_weight_is_read_back(weight: float) -> None:
    assert parse_source(f"s3://b/set={weight!r}") == SourceSpec("s3://b/set", weight)


def test_a_half_weighted_or_repeated_list_is_refused() -> None:
    with pytest.raises(ConfigError, match="shards/b has no weight while other sources have one"):
        plan_from_shards(["shards/a=0.7", "shards/b"])
    with pytest.raises(ConfigError, match="source shards/a is listed twice"):
        plan_from_shards(["shards/a", "shards/a"])


@pytest.mark.parametrize(("name", "text"), [("plan.yaml", YAML_PLAN), ("plan.toml", TOML_PLAN)])
def test_a_data_file_describes_phases(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    plan = load_data_file(str(path))
    assert plan.phases == EXPECTED and plan.origin == f"data file {path}"


def test_a_data_file_without_phases_is_one_phase() -> None:
    plan = plan_from_dict({"sources": ["a=1", "b=3"], "seq_len": 128}, "f")
    assert plan.phases == (
        PhaseSpec("phase 1", (SourceSpec("a", 1.0), SourceSpec("b", 3.0)), None, 128, None),
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            {"phases": [{"sources": ["a"], "until_tokens": 100}, {"sources": ["b"]}]},
            None,
        ),
        (
            {
                "phases": [
                    {"sources": ["a"], "until_tokens": 200},
                    {"sources": ["b"], "until_tokens": 200},
                ]
            },
            r"phase 'phase 2' ends at 200 tokens, not after the previous phase's 200",
        ),
        (
            {
                "phases": [
                    {"sources": ["a"], "until_tokens": "5M"},
                    {"sources": ["b"], "until_tokens": "1M"},
                ]
            },
            r"ends at 1,000,000 tokens, not after the previous phase's 5,000,000",
        ),
        (
            {"phases": [{"sources": ["a"]}, {"sources": ["b"], "until_tokens": 10}]},
            "phase 'phase 1' has no until_tokens",
        ),
        ({"phases": [{"sources": ["a=0"]}]}, "weight 0 must be a positive number"),
        (
            {"phases": [{"sources": [{"uri": "a", "weight": -2}]}]},
            "weight = -2: Input should be greater than 0",
        ),
        ({"phases": [{"sources": ["a"], "until_tokens": "lots"}]}, "'lots' is not a token count"),
        ({"phases": [{"sources": []}]}, "phases.0.sources = \\[\\]: List should have at least 1"),
        ({"phases": [{"sources": ["a"], "seqlen": 5}]}, "unknown key phases.0.seqlen"),
        ({"sources": ["a"], "phases": [{"sources": ["b"]}]}, "either `sources`.*not both"),
        ({}, "either `sources`.*not neither"),
        ({"sources": ["a"], "on_exhausted": "stop"}, "on_exhausted = 'stop'"),
    ],
)
def test_a_plan_that_cannot_be_trained_is_one_clear_error(
    content: dict, message: str | None
) -> None:
    if message is None:
        assert len(plan_from_dict(content, "data file d.yaml").phases) == 2
        return
    with pytest.raises(ConfigError, match=f"^data file d.yaml.*{message}") as caught:
        plan_from_dict(content, "data file d.yaml")
    assert "\n" not in str(caught.value)


def test_token_counts_read_like_people_write_them() -> None:
    assert [parse_token_count(v, "x") for v in (10, "2_000", "3k", "2M", "1.5B", "1T")] == [
        10,
        2000,
        3000,
        2_000_000,
        1_500_000_000,
        10**12,
    ]


def test_a_broken_data_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("phases: [ {sources: [a]\n")
    with pytest.raises(ConfigError, match="^data file .*plan.yaml is not valid: ") as caught:
        load_data_file(str(path))
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match="data file not found"):
        load_data_file(str(tmp_path / "missing.yaml"))


def test_train_config_takes_one_uri_a_list_or_a_file() -> None:
    assert TrainConfig(shards="s", output="o").shards == ["s"]  # older runs and deployments
    both = TrainConfig(shards=["a=0.7", "b=0.3"], output="o")
    assert both.shards == ["a=0.7", "b=0.3"] and both.data_name == "a=0.7, b=0.3"
    assert TrainConfig.from_dict(TrainConfig(shards="s", output="o").to_dict()).shards == ["s"]
    assert TrainConfig(data="plan.yaml", output="o").data_name == "in plan.yaml"
    with pytest.raises(ConfigError, match="either as --shards .* or as --data FILE, not neither"):
        TrainConfig(output="o")
    with pytest.raises(ConfigError, match="not both"):
        TrainConfig(shards="s", data="plan.yaml", output="o")
    with pytest.raises(ConfigError, match="weight -1 must be a positive number"):
        TrainConfig(shards=["a=-1"], output="o")


def test_the_data_may_change_when_a_run_resumes() -> None:
    """A changed set of sources becomes a new phase of the run, not a refusal."""
    before = TrainConfig(shards="a", output="o")
    assert before.replace(shards=["a=0.7", "b=0.3"]).differences(before) == {}
    assert before.replace(shards=[], data="plan.yaml").differences(before) == {}
    assert before.replace(seed=1).differences(before) == {"seed": (1337, 1)}
