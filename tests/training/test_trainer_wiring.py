"""What the trainer hands to the model and the optimizer: the model tests prove document masking
and the loss right for given inputs, these prove the training loop gives them those inputs.

- `--doc-mask`: every training and validation forward gets the batch's document ids (so no
  token attends across a document boundary inside its window); without it, none.
- `--grad-clip C`: the optimizer steps on gradients whose total norm is at most C, while
  `metrics.jsonl` reports the norm before clipping.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from smelt.model.decoder import Decoder
from smelt.training import loop as loop_module
from smelt.training.loop import train
from smelt.training.metrics import read_metrics
from smelt.training.mixture import MixtureLoader
from tests.training.conftest import small_config


@pytest.fixture
def forwards(monkeypatch: pytest.MonkeyPatch) -> tuple[list, list]:
    """(training batches the loader gave, (training?, inputs, doc_ids) of each model forward)."""
    batches: list = []
    seen: list = []
    next_batch, forward = MixtureLoader.next_batch, Decoder.forward

    def recording_next_batch(self):
        batch = next_batch(self)
        batches.append(batch)
        return batch

    def recording_forward(self, idx, targets=None, doc_ids=None, **kwargs):
        seen.append((self.training, idx, doc_ids))
        return forward(self, idx, targets, doc_ids, **kwargs)

    monkeypatch.setattr(MixtureLoader, "next_batch", recording_next_batch)
    monkeypatch.setattr(Decoder, "forward", recording_forward)
    return batches, seen


def test_document_masking_reaches_every_forward(shards: str, tmp_path: Path, forwards) -> None:
    batches, seen = forwards
    config = small_config(
        shards,
        tmp_path / "run",
        doc_mask=True,
        max_steps=4,
        batch_size=8,
        seq_len=256,
        eval_every=4,
    )
    train(config)
    training = [(idx, doc_ids) for is_training, idx, doc_ids in seen if is_training]
    evaluation = [doc_ids for is_training, _, doc_ids in seen if not is_training]
    assert len(training) == len(batches) == 4
    for batch, (idx, doc_ids) in zip(batches, training, strict=True):
        assert torch.equal(idx, batch.inputs)
        assert doc_ids is not None and torch.equal(doc_ids, batch.doc_ids)
    # some windows span two documents: there the mask changes what a token may attend to
    assert any(len(row.unique()) > 1 for batch in batches for row in batch.doc_ids)
    assert evaluation and all(doc_ids is not None for doc_ids in evaluation)


def test_without_document_masking_no_ids_are_passed(shards: str, tmp_path: Path, forwards) -> None:
    _, seen = forwards
    train(small_config(shards, tmp_path / "run", max_steps=2, eval_every=2))
    assert seen and all(doc_ids is None for _, _, doc_ids in seen)


def test_the_optimizer_steps_on_clipped_gradients(
    shards: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    norms: list[float] = []
    build = loop_module.optim.build_optimizer

    def recording_optimizer(*args, **kwargs):
        optimizer = build(*args, **kwargs)

        def before_step(opt, *_):  # the gradients the update is about to use
            grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
            norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

        optimizer.register_step_pre_hook(before_step)
        return optimizer

    monkeypatch.setattr(loop_module.optim, "build_optimizer", recording_optimizer)
    clip = 0.05
    config = small_config(shards, tmp_path / "run", max_steps=3, grad_clip=clip, log_every=1)
    train(config)
    reported = [r["grad_norm"] for r in read_metrics(str(tmp_path / "run" / "metrics.jsonl"))]
    assert len(norms) == len(reported) == 3
    assert all(norm > clip * 10 for norm in reported)  # the raw gradients are far larger
    assert norms == pytest.approx([clip] * 3, rel=1e-3)  # ... and were clipped to the limit
