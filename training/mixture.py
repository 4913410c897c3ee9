"""`MixtureLoader`: a run's training batches, drawn from several shard sets by weight, in phases.

Every micro-batch is B x W windows of T+1 tokens (W ranks; rank r takes every W-th). Which shard
set each window comes from follows `allocation.allocate` (exact shares, interleaved, no
randomness); which window of that set follows its own `WindowStream`: a seeded permutation per
epoch, handed out one window at a time, running from one epoch into the next (a new
permutation) without skipping any. A phase of one shard set reads it exactly as `ShardLoader`
does (B x W windows a step, an epoch's tail shorter than that left out): with one `--shards`
URI a run draws the same batches as before mixtures, bit for bit.

Phases (`sources.TrainingData`) change at optimizer-step boundaries: before a step's first
micro-batch the loader moves on when the run has drawn the phase's `until_tokens`, or, for a
phase that ends when a source runs out (`end_phase`), when a set's epoch could not serve the
whole next step. In a `repeat` phase a set that runs out goes on with its next epoch, counted
in `source_epochs`. After the last phase the loader is `finished` and training stops. A set
keeps its stream across phases of the same `seq_len`.

The state (`state_dict`, the same on every rank) holds the tokens drawn, per source and in all,
each set's epoch and position, the draw counts of the current phase, and the run's phase
history: every phase it started, from which token count and why, with the shard sets (URIs and
manifest SHA-256s) and weights it drew from. A resumed run continues it exactly. When the
sources resolve differently on resume (a glob matched a new shard set, a set was rebuilt, the
weights or the data file changed), the run does not change silently: a new phase starts at the
resume point and the history says what changed.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from smelt.errors import ConfigError, InputError, SmeltError
from smelt.training.allocation import allocate
from smelt.training.loader import Batch, ShardReader, WindowStream, collate
from smelt.training.sources import Phase, ShardSet, TrainingData

log = logging.getLogger(__name__)

STATE_VERSION = 2
AHEAD_WINDOWS = 4096  # windows allocated at a time
LEGACY_STATE_VERSION = 1  # ShardLoader's: one shard set, one stream


class DataPlanFinished(SmeltError):
    """A batch was asked for after the last phase of the data plan ended."""


def stream_key(shard_set: ShardSet, seq_len: int) -> str:
    """A set read at one window size is one stream (`uri@seq_len`)."""
    return f"{shard_set.uri}@{seq_len}"


class MixtureLoader:
    """Seeded, resumable (B, T) batches of a data plan for rank `rank` of `world_size`."""

    def __init__(
        self,
        data: TrainingData,
        batch_size: int = 8,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        grad_accum: int = 1,
        with_doc_ids: bool = False,
        verify: bool = True,
    ) -> None:
        if batch_size < 1 or grad_accum < 1:
            raise ConfigError(f"batch_size ({batch_size}) and grad_accum must be >= 1")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside world_size {world_size}")
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.rank, self.world_size, self.grad_accum = rank, world_size, grad_accum
        self.with_doc_ids = with_doc_ids
        self.step_windows = batch_size * world_size  # windows per micro-batch, all ranks
        self.readers = {
            stream_key(s, phase.seq_len): self._reader(s, phase, verify)
            for phase in data.phases
            for s in phase.sets
        }
        self.tokens = 0  # training tokens drawn, all ranks
        self.micro = 0  # micro-batches drawn of the current optimizer step
        self.source_tokens = dict.fromkeys(data.sources, 0)
        self.source_epochs = dict.fromkeys(data.sources, 0)
        self.history: list[dict[str, Any]] = []
        self.streams: dict[str, WindowStream] = {}
        self._dormant: dict[str, dict[str, Any]] = {}  # saved streams of sets not in use
        self._activate(data.phases[0], np.zeros(len(data.phases[0].sets), dtype=np.int64))
        self.plan_phase = 0
        self._start_phase(0, "start")

    # ---- batches ---------------------------------------------------------------------------

    def next_batch(self) -> Batch:
        if self.finished:
            raise DataPlanFinished(
                f"the data plan ({self.data.origin}) ended at {self.tokens:,} tokens; no batch "
                "is left"
            )
        size, mine = self.step_windows, slice(self.rank, None, self.world_size)
        self.tokens += size * self._seq_len
        self.micro = (self.micro + 1) % self.grad_accum
        if len(self._streams) == 1:  # one set: its stream alone, as before mixtures
            self._drawn[0] += size
            windows = self._streams[0].take(size)[mine].tolist()
            reader = self._readers[0]
            return collate([reader.window(w, self.with_doc_ids) for w in windows])
        picks, windows = self._upcoming(size)
        readers = self._readers
        return collate(
            [
                readers[i].window(w, self.with_doc_ids)
                for i, w in zip(picks[mine].tolist(), windows[mine].tolist(), strict=True)
            ]
        )

    def _upcoming(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The next `count` windows of the mixture: their sets and their indices in them.

        Thousands are planned at a time (which set each comes from, then each set's next
        windows, one by one across its epochs); the streams and draw counts catch up with what
        was handed out only when asked (`_sync`), so a micro-batch costs two slices."""
        if self._ahead_at + count > len(self._ahead):
            self._sync()
            picks = allocate(self._weights, self._drawn, max(count, AHEAD_WINDOWS))
            counts = np.bincount(picks, minlength=len(self._streams)).tolist()
            windows = np.empty(len(picks), dtype=np.int64)
            parts = [stream.peek(n) for stream, n in zip(self._streams, counts, strict=True)]
            windows[np.argsort(picks, kind="stable")] = np.concatenate(parts)
            self._ahead, self._ahead_windows = picks, windows
            self._ahead_at = self._synced_at = 0
        start, self._ahead_at = self._ahead_at, self._ahead_at + count
        return self._ahead[start : self._ahead_at], self._ahead_windows[start : self._ahead_at]

    def _sync(self) -> None:
        """Advance the sets' streams and draw counts past the windows handed out so far."""
        if len(self._streams) == 1 or self._ahead_at == self._synced_at:
            return
        handed = self._ahead[self._synced_at : self._ahead_at]
        counts = np.bincount(handed, minlength=len(self._streams))
        for stream, count in zip(self._streams, counts.tolist(), strict=True):
            stream.advance(count)
        self._drawn += counts
        self._synced_at = self._ahead_at

    def _tally(self) -> None:
        """Bring `source_tokens` and `source_epochs` up to date with the windows drawn since
        the last tally (kept out of `next_batch`, which only counts per set)."""
        self._sync()
        seq_len = self._seq_len
        for i, shard_set in enumerate(self._sets):
            new = int(self._drawn[i] - self._tallied[i])
            if new:
                self.source_tokens[shard_set.source] += new * seq_len
            epoch = self._streams[i].epoch
            if epoch > self.source_epochs.get(shard_set.source, 0):
                self.source_epochs[shard_set.source] = epoch
        self._tallied = self._drawn.copy()

    @property
    def finished(self) -> bool:
        """Whether the plan has no phase left for the next step (training stops)."""
        self._settle()
        return self.plan_phase >= len(self.data.phases)

    @property
    def phase(self) -> Phase:
        return self.data.phases[min(self.plan_phase, len(self.data.phases) - 1)]

    def metrics(self) -> dict[str, Any]:
        """What each metrics.jsonl record carries about the data (after the step just drawn)."""
        self._tally()
        current = self.history[-1]
        return {
            "source_tokens": dict(self.source_tokens),
            "source_epochs": dict(self.source_epochs),
            "phase": current["phase"],
            "phase_name": current["name"],
        }

    def summary(self) -> dict[str, Any]:
        """The mixture as drawn so far: per source, per phase (for reports)."""
        self._tally()
        phases = []
        for number, record in enumerate(self.history):
            following = self.history[number + 1 : number + 2]
            end = following[0]["start_tokens"] if following else self.tokens
            phases.append({**record, "end_tokens": end})
        return {
            "tokens": self.tokens,
            "source_tokens": dict(self.source_tokens),
            "source_epochs": dict(self.source_epochs),
            "phases": phases,
            "finished": self.plan_phase >= len(self.data.phases),
        }

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()

    # ---- phases ----------------------------------------------------------------------------

    def _settle(self) -> None:
        """At a step boundary: move past every phase that is over (idempotent)."""
        while self.micro == 0 and self.plan_phase < len(self.data.phases):
            phase = self.phase
            if phase.until_tokens is not None and self.tokens >= phase.until_tokens:
                reason = f"phase {phase.name!r} reached {phase.until_tokens:,} tokens"
            elif phase.on_exhausted == "end_phase" and (out := self._running_out()):
                reason = f"shard set {out} of phase {phase.name!r} ran out"
            else:
                return
            if self.plan_phase + 1 < len(self.data.phases):
                self._start_phase(self.plan_phase + 1, reason)
            else:
                self.plan_phase = len(self.data.phases)
                log.warning("the data plan ends at %s tokens: %s", f"{self.tokens:,}", reason)

    def _running_out(self) -> str | None:
        """The first set whose epoch cannot serve the whole next optimizer step, if any."""
        self._sync()
        picks = allocate(self._weights, self._drawn, self.step_windows * self.grad_accum)
        counts = np.bincount(picks, minlength=len(self._streams))
        for i, stream in enumerate(self._streams):
            if stream.runs_out([int(counts[i])]):
                return self.phase.sets[i].uri
        return None

    def _start_phase(self, plan_phase: int, reason: str) -> None:
        """Begin plan phase `plan_phase` now, as a new phase of the run's history."""
        self._tally()  # the phase that ends
        phase = self.data.phases[plan_phase]
        self.plan_phase = plan_phase
        record = {
            "phase": len(self.history),
            "name": phase.name,
            "plan_phase": plan_phase,
            "start_tokens": self.tokens,
            "reason": reason,
            **phase.signature(),
        }
        self.history.append(record)
        self._activate(phase, np.zeros(len(phase.sets), dtype=np.int64))
        if reason != "start":
            log.warning(
                "phase %d (%r) starts at %s tokens (%s): %s",
                record["phase"],
                phase.name,
                f"{self.tokens:,}",
                reason,
                ", ".join(f"{s.uri} {s.weight:.1%}" for s in phase.sets),
            )

    def _activate(self, phase: Phase, drawn: np.ndarray) -> None:
        """Draw from `phase`'s sets: their streams (kept, restored or new) and weights."""
        self._sets, self._seq_len = phase.sets, phase.seq_len
        self._keys = [stream_key(s, phase.seq_len) for s in phase.sets]
        self._weights = np.array([s.weight for s in phase.sets], dtype=np.float64)
        self._drawn, self._tallied = drawn, drawn.copy()
        self._ahead = self._ahead_windows = np.empty(0, dtype=np.int64)
        self._ahead_at = self._synced_at = 0
        for shard_set, key in zip(phase.sets, self._keys, strict=True):
            if key not in self.streams:
                self.streams[key] = self._stream(shard_set, key)
        self._streams = [self.streams[key] for key in self._keys]
        self._readers = [self.readers[key] for key in self._keys]

    def _stream(self, shard_set: ShardSet, key: str) -> WindowStream:
        """A set's stream: continued from its saved state when the set is unchanged."""
        stream = WindowStream(self.readers[key].num_windows, self.seed)
        saved = self._dormant.pop(key, None)
        if saved is None:
            return stream
        if (saved["manifest_sha256"], saved["num_windows"]) == (
            shard_set.manifest_sha256,
            stream.num_windows,
        ):
            stream.restore(int(saved["epoch"]), int(saved["position"]))
        else:
            log.warning(
                "shard set %s changed since it was last read (another manifest): it is read "
                "again from a new first epoch",
                shard_set.uri,
            )
        return stream

    def _reader(self, shard_set: ShardSet, phase: Phase, verify: bool) -> ShardReader:
        reader = ShardReader(shard_set.manifest, "train", phase.seq_len, verify=verify)
        # alone in its phase, a set is read a whole micro-batch at a time (in a mixture, one
        # window at a time: any set with a window will do)
        if len(phase.sets) == 1 and reader.num_windows < self.step_windows:
            raise InputError(
                f"shard set {shard_set.uri} has {reader.num_windows} windows of "
                f"{phase.seq_len + 1} tokens, fewer than one step needs ({self.batch_size} x "
                f"{self.world_size} ranks, phase {phase.name!r}); lower the batch or seq_len"
            )
        return reader

    # ---- state -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """JSON-safe: where every stream stands and the run's phase history."""
        self._tally()
        streams = dict(self._dormant)
        for key, stream in self.streams.items():
            shard_set, seq_len = self._set_of(key)
            streams[key] = {
                "uri": shard_set.uri,
                "seq_len": seq_len,
                "manifest_sha256": shard_set.manifest_sha256,
                "num_windows": stream.num_windows,
                "epoch": stream.epoch,
                "position": stream.position,
            }
        return {
            "version": STATE_VERSION,
            "seed": self.seed,
            "tokenizer_sha256": self.data.tokenizer_sha256,
            "tokens": self.tokens,
            "micro": self.micro,
            "plan_phase": self.plan_phase,
            "drawn": [int(n) for n in self._drawn],
            "streams": streams,
            "source_tokens": dict(self.source_tokens),
            "source_epochs": dict(self.source_epochs),
            "history": [dict(record) for record in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly after the saved step, or, when the sources now resolve to other
        shard sets, weights or window size, with a new phase that starts here."""
        if state.get("version") == LEGACY_STATE_VERSION:
            state = self._from_single_stream(state)
        if state.get("version") != STATE_VERSION:
            raise ConfigError(
                f"loader state version {state.get('version')!r} is not {STATE_VERSION}; "
                "resume it with the version of smelt that wrote it"
            )
        if state["seed"] != self.seed:
            raise ConfigError(
                f"loader state was saved with seed={state['seed']!r} but this loader has "
                f"{self.seed!r}; resume with the same seed"
            )
        self._sync()
        self._tallied = self._drawn.copy()  # what was drawn before is replaced, not counted
        self.tokens, self.micro = int(state["tokens"]), int(state["micro"])
        self.source_tokens = {**dict.fromkeys(self.data.sources, 0), **state["source_tokens"]}
        self.source_epochs = {**dict.fromkeys(self.data.sources, 0), **state["source_epochs"]}
        self.history = [dict(record) for record in state["history"]]
        self.streams, self._dormant = {}, dict(state["streams"])
        self.plan_phase = min(int(state["plan_phase"]), len(self.data.phases))
        if self.plan_phase == len(self.data.phases):
            return
        phase, last = self.phase, self.history[-1]
        change = _change(last, phase) if last["plan_phase"] == self.plan_phase else "new phase"
        if change is None:
            self._activate(phase, np.array(state["drawn"], dtype=np.int64))
        else:
            self._start_phase(self.plan_phase, change)

    def _from_single_stream(self, state: dict[str, Any]) -> dict[str, Any]:
        """A `ShardLoader` state (checkpoints written before mixtures) as this loader's: its
        one stream belongs to the first set of the first phase."""
        phase = self.data.phases[0]
        first = phase.sets[0]
        key = stream_key(first, phase.seq_len)
        expected = {
            "split": "train",
            "seq_len": phase.seq_len,
            "num_windows": self.readers[key].num_windows,
            "tokenizer_sha256": first.manifest.tokenizer_sha256,
        }
        for name, mine in expected.items():
            if state.get(name) != mine:
                raise ConfigError(
                    f"loader state was saved with {name}={state.get(name)!r} but this loader "
                    f"has {mine!r}; resume with the same shards, seed and seq_len"
                )
        epoch, position = int(state["epoch"]), int(state["position"])
        per_epoch = self.readers[key].num_windows // self.step_windows * self.step_windows
        tokens = (epoch * per_epoch + position) * phase.seq_len
        record = {**first.record(), "weight": 1.0}
        return {
            "version": STATE_VERSION,
            "seed": state["seed"],
            "tokens": tokens,
            "micro": 0,
            "plan_phase": 0,
            "drawn": [tokens // phase.seq_len],
            "streams": {
                key: {
                    "uri": first.uri,
                    "seq_len": phase.seq_len,
                    "manifest_sha256": first.manifest_sha256,
                    "num_windows": expected["num_windows"],
                    "epoch": epoch,
                    "position": position,
                }
            },
            "source_tokens": {first.source: tokens},
            "source_epochs": {first.source: epoch},
            "history": [
                {
                    "phase": 0,
                    "name": phase.name,
                    "plan_phase": 0,
                    "start_tokens": 0,
                    "reason": "start",
                    "seq_len": phase.seq_len,
                    "sets": [record],
                }
            ],
        }

    def _set_of(self, key: str) -> tuple[ShardSet, int]:
        for phase in self.data.phases:
            for shard_set in phase.sets:
                if stream_key(shard_set, phase.seq_len) == key:
                    return shard_set, phase.seq_len
        raise KeyError(key)


def _change(record: dict[str, Any], phase: Phase) -> str | None:
    """What differs between a recorded phase and the plan's phase now; None when nothing."""
    now = phase.signature()
    if now == {"seq_len": record["seq_len"], "sets": record["sets"]}:
        return None
    before = {s["uri"]: s for s in record["sets"]}
    after = {s["uri"]: s for s in now["sets"]}
    changes = []
    if added := [uri for uri in after if uri not in before]:
        changes.append("added " + ", ".join(added))
    if removed := [uri for uri in before if uri not in after]:
        changes.append("removed " + ", ".join(removed))
    both = [uri for uri in after if uri in before]
    if rebuilt := [u for u in both if after[u]["manifest_sha256"] != before[u]["manifest_sha256"]]:
        changes.append("rebuilt " + ", ".join(rebuilt))
    if any(after[u]["weight"] != before[u]["weight"] for u in both):
        changes.append("weights changed")
    if now["seq_len"] != record["seq_len"]:
        changes.append(f"seq_len {record['seq_len']} -> {now['seq_len']}")
    return "sources changed: " + "; ".join(changes or ["order changed"])


def mixture_markdown(summary: dict[str, Any]) -> str:
    """A report of what a run drew: per source, then per phase."""
    total = summary["tokens"] or 1
    lines = [
        "# Training data",
        "",
        "| source | tokens | share | epoch |",
        "|---|---:|---:|---:|",
    ]
    for source, tokens in summary["source_tokens"].items():
        epoch = summary["source_epochs"].get(source, 0)
        lines.append(f"| `{source}` | {tokens:,} | {tokens / total:.1%} | {epoch} |")
    lines += [
        "",
        "| phase | name | tokens | seq_len | shard sets (weight) | why it started |",
        "|---:|---|---|---:|---|---|",
    ]
    for phase in summary["phases"]:
        sets = "<br>".join(f"`{s['uri']}` {s['weight']:.1%}" for s in phase["sets"])
        span = f"{phase['start_tokens']:,} – {phase['end_tokens']:,}"
        lines.append(
            f"| {phase['phase']} | {phase['name']} | {span} | {phase['seq_len']} | {sets} | "
            f"{phase['reason']} |"
        )
    if summary.get("finished"):
        lines += ["", "The data plan ended: its last phase is over."]
    return "\n".join(lines) + "\n"
