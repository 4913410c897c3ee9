"""Recurring builds: `{date}` outputs and glob references to every earlier finished corpus."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from smelt import storage
from smelt.corpus.targets import expand_dedup_against, expand_output
from smelt.flows.corpus_build import CorpusBuildParams, build_date, resolve_request


def _corpus(root: str, finished: bool) -> str:
    storage.write_text(storage.join(root, "data", "part-00000.parquet"), "")
    if finished:
        storage.write_text(storage.join(root, "stats.json"), "{}")
    return root


def test_date_in_output_becomes_the_build_date() -> None:
    when = datetime(2026, 11, 21, 2, 0)
    assert expand_output("s3://lake/corpus/nightly/{date}", when) == (
        "s3://lake/corpus/nightly/2026-11-21"
    )
    assert expand_output("s3://lake/corpus/main", when) == "s3://lake/corpus/main"


def test_glob_means_every_earlier_finished_corpus(tmp_path) -> None:
    root = str(tmp_path)
    main = _corpus(f"{root}/main", finished=True)
    night1 = _corpus(f"{root}/nightly/2026-11-19", finished=True)
    night2 = _corpus(f"{root}/nightly/2026-11-20", finished=True)
    _corpus(f"{root}/nightly/2026-11-18", finished=False)  # crashed: no stats.json, no reference
    tonight = _corpus(f"{root}/nightly/2026-11-21", finished=True)  # a rerun of tonight's build
    resolved = expand_dedup_against([main, f"{root}/nightly/*"], tonight)
    assert resolved == [main, night1, night2]


def test_glob_on_s3_and_flow_parameters(s3_bucket: str) -> None:
    _corpus(f"{s3_bucket}/corpus/nightly/2026-11-20", finished=True)
    params = CorpusBuildParams(
        inputs=[f"{s3_bucket}/raw"],
        output=f"{s3_bucket}/corpus/nightly/{{date}}",
        dedup_against=[f"{s3_bucket}/corpus/nightly/*"],
    )
    resolved = resolve_request(params, datetime(2026, 11, 21, 3, tzinfo=UTC))
    assert resolved.output == f"{s3_bucket}/corpus/nightly/2026-11-21"
    assert resolved.dedup_against == [f"{s3_bucket}/corpus/nightly/2026-11-20"]


def test_date_is_utc_whoever_starts_the_build() -> None:
    """The command line and a scheduled deployment give the same {date} for the same moment:
    00:30 in Berlin on the 22nd is still the 21st in UTC."""
    berlin = timezone(timedelta(hours=1))
    moment = datetime(2026, 11, 22, 0, 30, tzinfo=berlin)
    assert build_date(moment) == datetime(2026, 11, 21, 23, 30, tzinfo=UTC)
    assert expand_output("nightly/{date}", build_date(moment)) == "nightly/2026-11-21"
    assert build_date(moment.astimezone(UTC)) == build_date(moment)


def test_a_build_with_a_glob_reference_counts_as_current_afterwards(tmp_path) -> None:
    """The pipeline asks whether the corpus is current with the references resolved exactly
    as the build resolved them (a glob once compared unexpanded: never current)."""
    from smelt.corpus.build import build_corpus, current_fingerprint

    earlier = tmp_path / "corpus" / "nightly" / "2026-11-20"
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.txt").write_text("The river runs past the old mill every spring. " * 30)
    params = CorpusBuildParams(
        inputs=[str(raw)],
        output=str(tmp_path / "corpus" / "nightly" / "{date}"),
        dedup_against=[str(tmp_path / "corpus" / "nightly" / "*")],
        config_overrides={"pii": {"enabled": False}, "filters": {"c4": {"enabled": False}}},
    )
    first = resolve_request(params, datetime(2026, 11, 20, tzinfo=UTC))
    build_corpus(first)
    assert storage.exists(str(earlier / "stats.json"))
    tonight = resolve_request(params, datetime(2026, 11, 21, tzinfo=UTC))
    assert tonight.dedup_against == [str(earlier)]
    assert current_fingerprint(tonight) is None  # not built yet
    build_corpus(tonight)
    assert current_fingerprint(resolve_request(params, datetime(2026, 11, 21, tzinfo=UTC)))


def test_date_of_finds_the_night_a_uri_was_built_for() -> None:
    from smelt.corpus.targets import date_of

    template = "s3://lake/corpus/nightly/{date}"
    assert date_of(template, "s3://lake/corpus/nightly/2026-11-21") == datetime(2026, 11, 21)
    assert date_of(template, "s3://lake/corpus/main") is None
    assert date_of(template, "s3://lake/corpus/nightly/2026-11-21/extra") is None
    assert date_of("s3://lake/corpus/main", "s3://lake/corpus/main") is None
