"""Every refusal happens before anything is written, as one `error:` line naming what is at
fault (exit 2), within seconds: output paths, permissions, buckets, credentials, endpoints,
an output holding other work. Each case hashes the directories involved before and after."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from smelt.prep.shards import build_shards
from smelt.prep.tokenizer import train_tokenizer
from smelt.storage import sha256_file
from tests.failures.conftest import assert_one_error, smelt, tree_digest
from tests.s3server import free_port
from tests.shards.corpus_factory import write_corpus

# ---- fixtures: a finished corpus, two tokenizers, a shard set (no Prefect needed) -----------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> dict[str, str]:
    """World-readable (an unprivileged user reads them in the read-only case)."""
    root = tempfile.mkdtemp(prefix="smelt-refusals-")
    os.chmod(root, 0o755)
    paths = {
        name: os.path.join(root, name) for name in ("corpus", "corpus2", "tok", "tok2", "shards")
    }
    write_corpus(paths["corpus"], parts=2, limit=400)
    write_corpus(paths["corpus2"], parts=2, limit=300)
    train_tokenizer(paths["corpus"], paths["tok"], vocab_size=400)
    train_tokenizer(paths["corpus"], paths["tok2"], vocab_size=500)
    build_shards(paths["corpus"], paths["tok"], paths["shards"], val_fraction=0.1)
    raw = os.path.join(root, "raw")
    os.makedirs(raw)
    with open(os.path.join(raw, "doc.txt"), "w") as fh:
        fh.write("A document that would be kept.\n")
    paths.update(root=root, raw=raw)
    yield paths
    shutil.rmtree(root, ignore_errors=True)


def _unchanged(paths: dict[str, str]):
    before = tree_digest(paths["root"])
    return lambda: tree_digest(paths["root"]) == before


# ---- output paths ------------------------------------------------------------------------


def commands(paths: dict[str, str], output: str) -> dict[str, list[str]]:
    return {
        "corpus": ["corpus", "build", "--input", paths["raw"], "--output", output],
        "tokenizer": ["tokenizer", "train", "--corpus", paths["corpus"], "--output", output],
        "shards": ["shards", "build", "--corpus", paths["corpus"], "--tokenizer", paths["tok"]]
        + ["--output", output],
    }


@pytest.mark.parametrize("command", ["corpus", "tokenizer", "shards"])
def test_an_output_that_is_an_existing_file_is_refused(prepared, command):
    existing = os.path.join(prepared["root"], "a-file")
    with open(existing, "w") as fh:
        fh.write("not a directory")
    try:
        unchanged = _unchanged(prepared)
        done = smelt(commands(prepared, existing)[command])
        assert_one_error(done, existing, "existing file")
        assert unchanged()
    finally:
        os.remove(existing)


def test_an_output_inside_the_input_is_refused_and_leaves_no_plan(prepared):
    unchanged = _unchanged(prepared)
    output = os.path.join(prepared["raw"], "corpus")
    done = smelt(commands(prepared, output)["corpus"])
    assert_one_error(done, output, f"inside the input {prepared['raw']}")
    assert unchanged()  # no _work/plan.json left in the input


def test_shards_inside_the_corpus_are_refused(prepared):
    unchanged = _unchanged(prepared)
    output = os.path.join(prepared["corpus"], "shards")
    done = smelt(commands(prepared, output)["shards"])
    assert_one_error(done, output, "inside the corpus")
    assert unchanged()


def _read_only(directory: str) -> list[str]:
    """A prefix that runs a command with `directory` read-only: its mode when the tests run
    unprivileged; for root (which may write anywhere) a read-only mount of it in a private
    mount namespace."""
    if os.geteuid() != 0:
        os.chmod(directory, 0o555)
        return []
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o ro tmpfs {directory}"],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.skip("running as root without a way to make a read-only directory")
    script = 'mount -t tmpfs -o ro tmpfs "$0" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, directory]


@pytest.mark.parametrize("command", ["corpus", "tokenizer", "shards"])
def test_a_read_only_output_directory_is_refused(prepared, command):
    parent = os.path.join(prepared["root"], "read-only")
    os.makedirs(parent)
    try:
        prefix = _read_only(parent)
        unchanged = _unchanged(prepared)
        output = os.path.join(parent, "out")
        argv = [
            *prefix,
            sys.executable,
            "-m",
            "smelt.cli.main",
            *commands(prepared, output)[command],
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert_one_error(done, output, f"cannot write under {parent}")
        assert unchanged()
    finally:
        os.chmod(parent, 0o755)
        os.rmdir(parent)


# ---- S3: unknown bucket, wrong credentials, endpoint down (fast, before any work) -------------


@pytest.fixture(scope="module")
def strict_s3():
    """A second moto server that checks credentials (none are known to it)."""
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    server = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H", "127.0.0.1"]
        + ["-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(endpoint, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield endpoint
    server.terminate()
    server.wait()


def s3_failure(kind: str, s3_server, strict_s3) -> tuple[dict[str, str], str]:
    """(environment, words the error must say) for one kind of S3 failure."""
    if kind == "unknown bucket":
        return s3_server.env(), "does not exist"
    if kind == "wrong credentials":
        env = {**s3_server.env(), "AWS_ENDPOINT_URL": strict_s3}
        return {**env, "AWS_ACCESS_KEY_ID": "AKIAWRONG", "AWS_SECRET_ACCESS_KEY": "wrong"}, "denied"
    closed = f"http://127.0.0.1:{free_port()}"
    return {**s3_server.env(), "AWS_ENDPOINT_URL": closed}, "does not answer"


S3_CASES = [
    ("corpus", "input", ["corpus", "build", "--input", "{uri}", "--output", "{local}"]),
    ("corpus", "output", ["corpus", "build", "--input", "{raw}", "--output", "{uri}"]),
    ("tokenizer", "output", ["tokenizer", "train", "--corpus", "{corpus}", "--output", "{uri}"]),
    ("shards", "output", ["shards", "build", "--corpus", "{corpus}", "--tokenizer", "{tok}"]
     + ["--output", "{uri}"]),
]  # fmt: skip


@pytest.mark.parametrize("kind", ["unknown bucket", "wrong credentials", "endpoint down"])
@pytest.mark.parametrize(("command", "role", "template"), S3_CASES, ids=lambda v: str(v)[:10])
def test_an_unusable_s3_location_is_one_line_naming_it_in_seconds(
    prepared, s3_server, strict_s3, kind, command, role, template, monkeypatch, capsys
):
    """In this process (the command line's own `main`), for speed; the next test runs the
    same in a subprocess."""
    from smelt.cli.main import main
    from smelt.storage import uri as uris

    uri = f"s3://no-such-bucket-{command}/{role}"
    env, words = s3_failure(kind, s3_server, strict_s3)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    uris.clear_cache()
    fields = {**prepared, "uri": uri, "local": os.path.join(prepared["root"], "never")}
    unchanged = _unchanged(prepared)
    code = main([part.format(**fields) for part in template])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    assert uri in lines[0] and words in lines[0], lines[0]
    assert unchanged()


@pytest.mark.parametrize("kind", ["unknown bucket", "wrong credentials", "endpoint down"])
def test_an_unusable_s3_input_is_one_line_from_the_command_line(
    prepared, s3_server, strict_s3, kind
):
    """The report: a traceback, `PermissionError: Forbidden` naming no URI, and 66 s when the
    endpoint was down (the subprocess timeout bounds it here)."""
    uri = "s3://no-such-bucket-cli/raw"
    env, words = s3_failure(kind, s3_server, strict_s3)
    out = os.path.join(prepared["root"], "never")
    done = smelt(["corpus", "build", "--input", uri, "--output", out], env, timeout=30)
    assert_one_error(done, uri, words)
    assert not os.path.exists(out)


def test_the_tokenizer_output_bucket_is_checked_before_training(
    prepared, s3_server, monkeypatch, capsys
):
    """The report: an unknown bucket surfaced only after training (14 s in)."""
    from smelt.cli.main import main
    from smelt.prep import tokenizer

    def trained(*args, **kwargs):
        raise AssertionError("training started before the output was checked")

    monkeypatch.setattr(tokenizer, "_train", trained)
    uri = "s3://no-such-bucket-tok/out"
    assert main(["tokenizer", "train", "--corpus", prepared["corpus"], "--output", uri]) == 2
    assert uri in capsys.readouterr().err


# ---- an output holding other work ---------------------------------------------------------


@pytest.mark.parametrize("other", ["tokenizer", "corpus"])
def test_shards_of_another_tokenizer_or_corpus_are_not_replaced(prepared, other):
    unchanged = _unchanged(prepared)
    corpus = prepared["corpus2"] if other == "corpus" else prepared["corpus"]
    tok = prepared["tok2"] if other == "tokenizer" else prepared["tok"]
    args = [
        "shards",
        "build",
        "--corpus",
        corpus,
        "--tokenizer",
        tok,
        "--output",
        prepared["shards"],
    ]
    done = smelt(args)
    assert_one_error(done, prepared["shards"], f"shards of another {other}", "--force")
    assert unchanged()


@pytest.mark.slow
def test_force_replaces_shards_of_another_tokenizer(prepared, tmp_path, prefect_api):
    shards = str(tmp_path / "shards")
    shutil.copytree(prepared["shards"], shards)
    args = ["shards", "build", "--corpus", prepared["corpus"], "--tokenizer", prepared["tok2"]]
    done = smelt([*args, "--output", shards, "--force"], prefect_api, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert manifest["tokenizer_sha256"] == sha256_file(
        os.path.join(prepared["tok2"], "tokenizer.json")
    )


@pytest.mark.slow
def test_an_error_raised_inside_a_task_run_is_one_line(prepared, tmp_path, prefect_api):
    """A corpus partition without a text column fails its tokenize task run."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    corpus = str(tmp_path / "corpus")
    shutil.copytree(prepared["corpus"], corpus)
    broken = os.path.join(corpus, "data", "part-00001.parquet")
    pq.write_table(pa.table({"id": ["a"], "body": ["no text column"]}), broken)
    args = ["shards", "build", "--corpus", corpus, "--tokenizer", prepared["tok"]]
    done = smelt([*args, "--output", str(tmp_path / "shards")], prefect_api, timeout=600)
    assert_one_error(done, broken, "lacks column(s) ['text']")


def test_debug_keeps_the_traceback(prepared):
    existing = os.path.join(prepared["root"], "stats.txt")
    with open(existing, "w") as fh:
        fh.write("a file")
    try:
        done = smelt(["--debug", *commands(prepared, existing)["corpus"]])
    finally:
        os.remove(existing)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr and "InputError" in done.stderr
