"""The stage contract (`smelt.storage.stage`), locally and on S3: outputs first, the marker with
the inputs' fingerprint last; a rerun skips exactly when that marker is there for the same
inputs, and does the work again after a crash before the marker or for other inputs."""

from __future__ import annotations

import pytest

from smelt import storage
from smelt.storage.stage import Marker, fingerprint, run_once


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path)
    return request.getfixturevalue("s3_bucket") + "/stage"


def _stage(root: str, calls: list[str], inputs: str):
    """A stage that writes one output from `inputs`, counting its runs."""

    def work() -> dict:
        calls.append(inputs)
        storage.write_text(f"{root}/out.txt", inputs.upper())
        return {"output": f"{root}/out.txt", "chars": len(inputs)}

    return work


def test_done_once_then_skipped_for_the_same_inputs(root: str) -> None:
    calls: list[str] = []
    marker = Marker(f"{root}/out.done", fingerprint("a", {"setting": 1}))
    first = run_once(marker, _stage(root, calls, "a"))
    again = run_once(Marker(marker.uri, fingerprint("a", {"setting": 1})), _stage(root, calls, "a"))
    assert calls == ["a"]
    recorded = {"output": f"{root}/out.txt", "chars": 1, "fingerprint": marker.fingerprint}
    assert first == {**recorded, "skipped": False}
    assert again == {**recorded, "skipped": True}


def test_other_inputs_do_the_work_again(root: str) -> None:
    calls: list[str] = []
    run_once(Marker(f"{root}/out.done", fingerprint("a")), _stage(root, calls, "a"))
    redone = run_once(Marker(f"{root}/out.done", fingerprint("b")), _stage(root, calls, "b"))
    assert calls == ["a", "b"] and not redone["skipped"]
    assert storage.read_text(f"{root}/out.txt") == "B"  # never served stale
    assert Marker(f"{root}/out.done", fingerprint("a")).read() is None
    assert Marker(f"{root}/out.done", fingerprint("b")).done()


def test_a_crash_before_the_marker_leaves_no_marker_and_the_work_reruns(root: str) -> None:
    marker = Marker(f"{root}/out.done", fingerprint("a"))

    def crashes() -> dict:
        storage.write_text(f"{root}/out.txt", "half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run_once(marker, crashes)
    assert storage.exists(f"{root}/out.txt") and not marker.done()
    calls: list[str] = []
    assert not run_once(marker, _stage(root, calls, "a"))["skipped"]
    assert calls == ["a"] and storage.read_text(f"{root}/out.txt") == "A"


def test_an_unreadable_or_foreign_marker_counts_as_absent(root: str) -> None:
    marker = Marker(f"{root}/out.done", fingerprint("a"))
    storage.write_text(marker.uri, "{not json")
    assert marker.read() is None
    storage.write_text(marker.uri, "[1, 2]")
    assert marker.read() is None
    calls: list[str] = []
    run_once(marker, _stage(root, calls, "a"))
    assert calls == ["a"] and marker.done()


def test_fingerprints_are_canonical() -> None:
    assert fingerprint({"b": 1, "a": [1, 2]}) == fingerprint({"a": [1, 2], "b": 1})
    assert fingerprint("a", 1) != fingerprint("a", 2) != fingerprint(("a", 2))
    assert Marker("x").fingerprint is None  # accepts any marker (checkpoints: run.json decides)
