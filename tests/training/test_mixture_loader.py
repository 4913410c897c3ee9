"""The mixture loader on real shard sets: exact weights, phases, epochs, and exact resume."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from smelt.training.data_plan import plan_from_dict, plan_from_shards
from smelt.training.loader import ShardLoader, ShardReader, collate, epoch_permutation
from smelt.training.mixture import DataPlanFinished, MixtureLoader
from smelt.training.sources import TrainingData, resolve

SEQ = 32


def data_of(*entries: str, seq_len: int = SEQ) -> TrainingData:
    return resolve(plan_from_shards(list(entries)), seq_len, "repeat")


def plan_data(plan: dict, seq_len: int = SEQ) -> TrainingData:
    return resolve(plan_from_dict(plan, "test plan"), seq_len, "repeat")


def window_keys(root: str, seq_len: int = SEQ) -> list[bytes]:
    """Every train window (its T+1 tokens) of a shard set, read from the files."""
    keys = []
    manifest = json.loads(Path(root, "manifest.json").read_text())
    for shard in (s for s in manifest["shards"] if s["split"] == "train"):
        tokens = np.fromfile(Path(root, shard["path"]), dtype="<u4")
        for w in range((len(tokens) - 1) // seq_len):
            keys.append(tokens[w * seq_len : w * seq_len + seq_len + 1].tobytes())
    return keys


def owners(sets: dict[str, str], seq_len: int = SEQ) -> dict[bytes, str]:
    """Every train window of every set -> the set's name."""
    found: dict[bytes, str] = {}
    for name, root in sets.items():
        for key in window_keys(root, seq_len):
            assert found.setdefault(key, name) == name, "a window occurs in two sets"
    return found


def row_keys(batch) -> list[bytes]:
    full = torch.cat([batch.inputs, batch.targets[:, -1:]], dim=1)
    return [row.numpy().astype("<u4").tobytes() for row in full]


def draw(loader: MixtureLoader | ShardLoader, steps: int) -> list:
    return [loader.next_batch() for _ in range(steps)]


def same_batches(left: list, right: list) -> bool:
    return all(
        torch.equal(a.inputs, b.inputs)
        and torch.equal(a.targets, b.targets)
        and (a.doc_ids is None) == (b.doc_ids is None)
        and (a.doc_ids is None or torch.equal(a.doc_ids, b.doc_ids))
        for a, b in zip(left, right, strict=True)
    )


def single_stream_windows(num_windows: int, seed: int, step_windows: int, steps: int):
    """The window indices of each step as the loader drew them before mixtures: epoch e is
    `epoch_permutation(n, seed, e)`, step k takes its next B x W positions, and an epoch whose
    rest is shorter than one step is left for the next."""
    epoch, position, order = 0, 0, epoch_permutation(num_windows, seed, 0)
    for _ in range(steps):
        if position + step_windows > num_windows:
            epoch, position = epoch + 1, 0
            order = epoch_permutation(num_windows, seed, epoch)
        yield order[position : position + step_windows]
        position += step_windows


def test_one_source_draws_exactly_what_it_drew_before_mixtures(shards: str) -> None:
    """One --shards URI: the same batches as before mixtures, bit for bit, on every rank and
    across an epoch boundary."""
    data = data_of(shards)
    reader = ShardReader(data.primary, "train", SEQ)
    steps = reader.num_windows // 8 + 7
    expected = list(single_stream_windows(reader.num_windows, 5, 8, steps))
    for rank in (0, 1):
        new = MixtureLoader(data, batch_size=4, seed=5, rank=rank, world_size=2)
        for indices, batch in zip(expected, draw(new, steps), strict=True):
            rows = collate([reader.window(int(i), False) for i in indices[rank::2]])
            assert torch.equal(batch.inputs, rows.inputs)
            assert torch.equal(batch.targets, rows.targets)
        assert new.metrics()["source_epochs"] == {shards: 1}
        old = ShardLoader(shards, batch_size=4, seq_len=SEQ, seed=5, rank=rank, world_size=2)
        assert same_batches(draw(MixtureLoader(data, 4, 5, rank, 2), 30), draw(old, 30))
    docs_old = ShardLoader(shards, batch_size=3, seq_len=SEQ, seed=5, with_doc_ids=True)
    docs_new = MixtureLoader(data, batch_size=3, seed=5, with_doc_ids=True)
    assert same_batches(draw(docs_new, 20), [docs_old.next_batch() for _ in range(20)])


def test_weights_are_respected_and_every_token_is_counted(mixture_sets: dict[str, str]) -> None:
    sets = mixture_sets
    data = data_of(f"{sets['even']}=5", f"{sets['odd']}=3", f"{sets['code']}=2")
    loader = MixtureLoader(data, batch_size=8, seed=1)
    owner = owners(sets)
    drawn: Counter[str] = Counter()
    for step in range(1, 151):
        drawn.update(owner[key] for key in row_keys(loader.next_batch()))
        windows = step * 8
        for name, weight in (("even", 0.5), ("odd", 0.3), ("code", 0.2)):
            assert abs(drawn[name] - weight * windows) <= 2, (step, drawn)  # at every step
    assert loader.metrics()["source_tokens"] == {
        sets[name]: drawn[name] * SEQ for name in ("even", "odd", "code")
    }
    assert loader.tokens == 150 * 8 * SEQ


def test_without_weights_sources_are_drawn_in_proportion_to_their_tokens(
    mixture_sets: dict[str, str],
) -> None:
    sets = mixture_sets
    data = data_of(sets["odd"], sets["code"])
    tokens = [s.manifest.num_tokens("train") for s in data.phases[0].sets]
    loader = MixtureLoader(data, batch_size=8, seed=2)
    draw(loader, 100)
    got = loader.metrics()["source_tokens"]
    assert abs(got[sets["odd"]] / loader.tokens - tokens[0] / sum(tokens)) < 0.01


def test_a_glob_shares_its_weight_among_its_sets_by_tokens(
    mixture_sets: dict[str, str], tmp_path: Path
) -> None:
    nights = tmp_path / "nights"
    for name in ("even", "odd"):
        shutil.copytree(mixture_sets[name], nights / f"2026-11-0{1 + (name == 'odd')}")
    (nights / "2026-11-03").mkdir()  # unfinished: no manifest.json, not part of the glob
    glob = f"{nights}/*"
    data = data_of(f"{mixture_sets['code']}=0.6", f"{glob}=0.4")
    sets = data.phases[0].sets
    assert [s.source for s in sets] == [mixture_sets["code"], glob, glob]
    assert [Path(s.uri).name for s in sets[1:]] == ["2026-11-01", "2026-11-02"]
    night_tokens = [s.manifest.num_tokens("train") for s in sets[1:]]
    for shard_set, tokens in zip(sets[1:], night_tokens, strict=True):
        assert shard_set.weight == pytest.approx(0.4 * tokens / sum(night_tokens))
    loader = MixtureLoader(data, batch_size=8, seed=3)
    draw(loader, 60)
    assert set(loader.metrics()["source_tokens"]) == {mixture_sets["code"], glob}
    assert loader.metrics()["source_tokens"][glob] == pytest.approx(0.4 * loader.tokens, abs=64)


def test_a_source_that_runs_out_is_repeated_and_its_epochs_counted(
    mixture_sets: dict[str, str],
) -> None:
    sets = mixture_sets
    data = data_of(f"{sets['even']}=1", f"{sets['code']}=1")
    owner = owners(sets)
    every = window_keys(sets["even"])
    loader = MixtureLoader(data, batch_size=8, seed=4)
    drawn: list[bytes] = []
    while len(drawn) <= len(every):
        drawn += [k for k in row_keys(loader.next_batch()) if owner[k] == "even"]
    assert loader.metrics()["source_epochs"] == {sets["even"]: 1, sets["code"]: 0}
    while len(drawn) < 2 * len(every):
        drawn += [k for k in row_keys(loader.next_batch()) if owner[k] == "even"]
    # in a mixture a set's windows come one by one: all of them once, then all of them again
    # in another order (the next epoch's permutation)
    first, second = drawn[: len(every)], drawn[len(every) : 2 * len(every)]
    assert Counter(first) == Counter(every) == Counter(second) and first != second


def test_end_phase_moves_on_when_a_source_runs_out_and_the_plan_finishes(
    mixture_sets: dict[str, str],
) -> None:
    sets = mixture_sets
    plan = {
        "on_exhausted": "end_phase",
        "phases": [
            {"name": "first", "until_tokens": "1T", "sources": [sets["even"]]},
            {"name": "second", "sources": [sets["odd"]]},
        ],
    }
    loader = MixtureLoader(plan_data(plan), batch_size=8, seed=6)
    owner = owners(sets)
    names = []
    while not loader.finished:
        names.append({owner[k] for k in row_keys(loader.next_batch())})
        assert len(names) < 2000, "the plan never ended"
    first = names.index({"odd"})
    assert all(n == {"even"} for n in names[:first]) and all(n == {"odd"} for n in names[first:])
    assert loader.metrics()["source_epochs"] == {sets["even"]: 0, sets["odd"]: 0}
    windows = {name: sum(1 for v in owner.values() if v == name) for name in ("even", "odd")}
    assert first == windows["even"] // 8 and len(names) - first == windows["odd"] // 8
    reasons = [p["reason"] for p in loader.summary()["phases"]]
    assert reasons == ["start", f"shard set {sets['even']} of phase 'first' ran out"]
    with pytest.raises(DataPlanFinished):
        loader.next_batch()


def test_phases_change_sources_and_seq_len_at_their_token_counts(
    mixture_sets: dict[str, str],
) -> None:
    sets = mixture_sets
    plan = {
        "phases": [
            {"name": "short", "seq_len": 16, "until_tokens": 1000, "sources": [sets["code"]]},
            {"name": "long", "seq_len": 64, "sources": [sets["even"], sets["odd"]]},
        ]
    }
    loader = MixtureLoader(plan_data(plan), batch_size=4, seed=7, grad_accum=2)
    shapes, phases = [], []
    for _ in range(24):  # 12 optimizer steps of 2 micro-batches
        shapes.append(loader.next_batch().inputs.shape[1])
        phases.append(loader.metrics()["phase_name"])
    # 1000 tokens = 15.6 micro-batches of 4 x 16: the phase ends at the first step boundary after
    assert shapes == [16] * 16 + [64] * 8 and phases == ["short"] * 16 + ["long"] * 8
    history = loader.summary()["phases"]
    assert [(p["name"], p["start_tokens"], p["seq_len"]) for p in history] == [
        ("short", 0, 16),
        ("long", 1024, 64),
    ]
    assert history[1]["reason"] == "phase 'short' reached 1,000 tokens"
    manifests = {s["uri"]: s["manifest_sha256"] for s in history[1]["sets"]}
    assert len(manifests) == 2 and all(len(sha) == 64 for sha in manifests.values())


def test_state_continues_exactly_mid_phase_and_across_a_boundary(
    mixture_sets: dict[str, str],
) -> None:
    sets = mixture_sets
    plan = {
        "phases": [
            {
                "name": "a",
                "until_tokens": 30 * 8 * SEQ,
                "sources": [f"{sets['even']}=2", f"{sets['code']}=1"],
            },
            {"name": "b", "seq_len": 16, "sources": [f"{sets['odd']}=1", f"{sets['code']}=3"]},
        ]
    }
    data = plan_data(plan)
    uninterrupted = MixtureLoader(data, batch_size=8, seed=8)
    reference = draw(uninterrupted, 80)
    assert [p["name"] for p in uninterrupted.summary()["phases"]] == ["a", "b"]
    for stop in (17, 30, 45):  # in phase a, at the boundary, in phase b
        first = MixtureLoader(data, batch_size=8, seed=8)
        draw(first, stop)
        state = json.loads(json.dumps(first.state_dict()))  # as a checkpoint stores it
        resumed = MixtureLoader(data, batch_size=8, seed=8)
        resumed.load_state_dict(state)
        assert same_batches(draw(resumed, 80 - stop), reference[stop:]), stop
        assert resumed.summary() == uninterrupted.summary()


def test_ranks_split_each_micro_batch_of_the_mixture(mixture_sets: dict[str, str]) -> None:
    sets = mixture_sets
    data = data_of(f"{sets['even']}=1", f"{sets['odd']}=1", f"{sets['code']}=2")
    whole = draw(MixtureLoader(data, batch_size=6, seed=9), 12)
    ranks = [
        draw(MixtureLoader(data, batch_size=3, seed=9, rank=r, world_size=2), 12) for r in (0, 1)
    ]
    for step, batch in enumerate(whole):
        assert torch.equal(batch.inputs[0::2], ranks[0][step].inputs)
        assert torch.equal(batch.inputs[1::2], ranks[1][step].inputs)


def test_a_checkpoint_from_before_mixtures_continues_its_one_stream(shards: str) -> None:
    old = ShardLoader(shards, batch_size=4, seq_len=SEQ, seed=11)
    steps = old.steps_per_epoch + 5
    draw(old, steps)
    loader = MixtureLoader(data_of(shards), batch_size=4, seed=11)
    loader.load_state_dict(old.state_dict())
    assert same_batches(draw(loader, 10), draw(old, 10))
    assert loader.metrics()["source_epochs"] == {shards: 1}
    assert loader.metrics()["source_tokens"] == {shards: (steps + 10) * 4 * SEQ}
    assert [p["reason"] for p in loader.summary()["phases"]] == ["start"]


def test_sources_that_resolve_differently_on_resume_start_a_new_phase(
    mixture_sets: dict[str, str], tmp_path: Path
) -> None:
    nights = tmp_path / "nights"
    shutil.copytree(mixture_sets["even"], nights / "2026-11-01")
    sources = (f"{mixture_sets['code']}=0.5", f"{nights}/*=0.5")
    before = MixtureLoader(data_of(*sources), batch_size=8, seed=12)
    draw(before, 10)
    state = json.loads(json.dumps(before.state_dict()))
    shutil.copytree(mixture_sets["odd"], nights / "2026-11-02")  # a new night

    after = MixtureLoader(data_of(*sources), batch_size=8, seed=12)
    after.load_state_dict(state)
    history = after.summary()["phases"]
    assert len(history) == 2 and history[1]["start_tokens"] == 10 * 8 * SEQ
    assert history[1]["reason"] == (f"sources changed: added {nights}/2026-11-02; weights changed")
    assert [Path(s["uri"]).name for s in history[1]["sets"]][1:] == ["2026-11-01", "2026-11-02"]
    assert after.metrics()["phase"] == 1
    # the sets drawn before keep their place in their epochs; the new one starts at its first
    positions = {s["uri"]: s for s in after.state_dict()["streams"].values()}
    assert positions[str(nights / "2026-11-01")]["position"] > 0
    assert positions[str(nights / "2026-11-02")]["position"] == 0
    owner = owners({"code": mixture_sets["code"], "even": mixture_sets["even"]})
    odd = owners({"odd": mixture_sets["odd"]})
    rows = [k for batch in draw(after, 10) for k in row_keys(batch)]
    assert sum(k in odd for k in rows) > 0 and all(k in owner or k in odd for k in rows)
