"""The validation split of a run: whether it can give a val_loss, and its batches.

A val split too small for one batch gives no val_loss; the run says so once, with what to
change, instead of logging nothing or failing at its first evaluation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from smelt.errors import InputError
from smelt.prep.shard_format import Manifest
from smelt.training import conversations
from smelt.training.config import TrainConfig
from smelt.training.loader import Batch, ShardReader, eval_batches

log = logging.getLogger(__name__)


def validation_possible(cfg: TrainConfig, manifest: Manifest, is_main: bool) -> bool:
    """Whether the val split fills at least one batch; says once (on the main rank) why not,
    when it has some data but too little (an evaluation would have no batch: no val_loss)."""
    if cfg.eval_every == 0 or not manifest.split("val"):
        return False
    if cfg.batch_source == "conversations":
        return conversations.has_conversations(manifest.root, "val")
    try:
        windows = ShardReader(manifest, "val", cfg.seq_len).num_windows
    except InputError:
        windows = 0
    if windows >= cfg.batch_size:
        return True
    if is_main:
        log.warning(
            "the val split of %s has %d windows of %d tokens, fewer than one batch of %d: "
            "no val_loss is logged; lower --batch-size or build the shards with a larger "
            "--val-fraction",
            manifest.root,
            windows,
            cfg.seq_len + 1,
            cfg.batch_size,
        )
    return False


def validation_batches(cfg: TrainConfig, root: str) -> Iterator[Batch]:
    """The first `eval_batches` batches of the val split at `root`, the same at every
    evaluation (so val_loss is comparable across steps)."""
    if cfg.batch_source == "conversations":
        return conversations.eval_batches(
            root, "val", cfg.batch_size, cfg.seq_len, cfg.eval_batches
        )
    return eval_batches(
        root, "val", cfg.batch_size, cfg.seq_len, cfg.eval_batches, with_doc_ids=cfg.doc_mask
    )
