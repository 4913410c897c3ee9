"""Packed conversations: attention never crosses conversations (changing one never changes
another's logits), conversations are never split over rows, and the batch stream is seeded,
resumable to the next conversation and partitioned over ranks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from smelt.chat import CHAT_TEMPLATE
from smelt.prep.conversation_build import build_conversation_shards, plan_conversations
from smelt.training.conversations import ConversationLoader
from smelt.training.inference import open_checkpoint

SEQ_LEN = 128


@pytest.fixture(scope="module")
def fact_set(base_run: Path, fact_files: list[Path], tmp_path_factory) -> str:
    """The facts tokenized (several conversations fit in one row of 128 tokens)."""
    output = tmp_path_factory.mktemp("packing") / "sft_data"
    plan = plan_conversations(
        [str(f) for f in fact_files],
        str(base_run / "tokenizer.json"),
        str(output),
        seq_len=SEQ_LEN,
        template=CHAT_TEMPLATE,
        val_fraction=0.0,
    )
    build_conversation_shards(plan)
    return str(output)


def _spans(doc_ids: torch.Tensor) -> list[tuple[int, int]]:
    """[start, end) of each document of one row (the padding is the last one, if any)."""
    ids = doc_ids.tolist()
    starts = [0] + [t for t in range(1, len(ids)) if ids[t] != ids[t - 1]]
    return list(zip(starts, starts[1:] + [len(ids)], strict=True))


def _row_with_conversations(loader: ConversationLoader, count: int):
    for _ in range(50):
        batch = loader.next_batch()
        for row in range(batch.inputs.shape[0]):
            if len(_spans(batch.doc_ids[row])) >= count + 1:  # + the padding
                return batch.inputs[row : row + 1], batch.doc_ids[row : row + 1]
    raise AssertionError(f"no row packs {count} conversations")


def test_changing_one_conversation_never_changes_anothers_logits(base_run, fact_set):
    model = open_checkpoint(str(base_run)).model
    loader = ConversationLoader(fact_set, batch_size=4, seq_len=SEQ_LEN, seed=1)
    inputs, doc_ids = _row_with_conversations(loader, 2)
    loader.close()
    spans = _spans(doc_ids[0])
    (a_start, a_end), (b_start, b_end) = spans[0], spans[1]
    changed = inputs.clone()
    generator = torch.Generator().manual_seed(0)
    changed[0, a_start:a_end] = torch.randint(5, 300, (a_end - a_start,), generator=generator)
    with torch.no_grad():
        before = model(inputs, doc_ids=doc_ids).logits
        after = model(changed, doc_ids=doc_ids).logits
        unmasked = model(changed).logits  # the same rows without document masking
        alone = model(inputs[:, b_start:b_end]).logits  # conversation B on its own, at 0
    assert (after[0, a_start:a_end] - before[0, a_start:a_end]).abs().max() > 1e-2
    for start, end in spans[1:]:
        torch.testing.assert_close(after[0, start:end], before[0, start:end], atol=1e-6, rtol=0)
    # the probe is sharp: without the mask, the later conversations do see the change ...
    assert (unmasked[0, b_start:b_end] - before[0, b_start:b_end]).abs().max() > 1e-3
    # ... and with it, B's logits are those it gets alone (positions differ: RoPE is relative)
    torch.testing.assert_close(before[0, b_start:b_end], alone[0], atol=1e-4, rtol=1e-4)


def test_rows_hold_whole_conversations_in_epoch_order(base_tokenizer, fact_set):
    loader = ConversationLoader(fact_set, batch_size=3, seq_len=SEQ_LEN, seed=7)
    count, pad_id = len(loader.reader), loader.pad_id
    seen: list[str] = []
    while len(seen) < 2 * count:
        batch = loader.next_batch()
        for row in range(batch.inputs.shape[0]):
            spans = _spans(batch.doc_ids[row])
            assert spans, "every row holds a conversation"
            for start, end in spans:
                text = base_tokenizer.decode(
                    batch.inputs[row, start:end].tolist(), skip_special_tokens=False
                )
                if start > 0 and set(batch.inputs[row, start:end].tolist()) == {pad_id}:
                    assert end == SEQ_LEN  # padding only at the end of a row
                    continue
                assert text.startswith("<|im_start|>") and text.endswith("<|im_end|>\n"), text
                seen.append(text)
    loader.close()
    stored = []
    reader = ConversationLoader(fact_set, batch_size=1, seq_len=SEQ_LEN, seed=7).reader
    for index in range(count):
        ids, _ = reader.conversation(index)
        stored.append(base_tokenizer.decode(ids.tolist(), skip_special_tokens=False))
    reader.close()
    # the first epoch is each conversation exactly once (rows take them in epoch order)
    assert sorted(seen[:count]) == sorted(stored)
    assert seen[:count] != seen[count : 2 * count]  # the next epoch is another permutation


def test_resumed_loader_continues_with_the_next_conversation(fact_set):
    first = ConversationLoader(fact_set, batch_size=2, seq_len=SEQ_LEN, seed=3)
    for _ in range(5):
        first.next_batch()
    state = first.state_dict()
    expected = [first.next_batch() for _ in range(4)]
    resumed = ConversationLoader(fact_set, batch_size=2, seq_len=SEQ_LEN, seed=3)
    resumed.load_state_dict(state)
    for want, got in zip(expected, [resumed.next_batch() for _ in range(4)], strict=True):
        assert torch.equal(want.inputs, got.inputs) and torch.equal(want.targets, got.targets)
        assert torch.equal(want.doc_ids, got.doc_ids) and torch.equal(want.weights, got.weights)
    other_seed = ConversationLoader(fact_set, batch_size=2, seq_len=SEQ_LEN, seed=4)
    with pytest.raises(Exception, match="seed"):
        other_seed.load_state_dict(state)
    for loader in (first, resumed, other_seed):
        loader.close()


def test_ranks_take_alternate_rows_of_the_same_packing(fact_set):
    whole = ConversationLoader(fact_set, batch_size=4, seq_len=SEQ_LEN, seed=5)
    ranks = [
        ConversationLoader(fact_set, batch_size=2, seq_len=SEQ_LEN, seed=5, rank=r, world_size=2)
        for r in range(2)
    ]
    for _ in range(3):
        rows = whole.next_batch().inputs
        mine = [loader.next_batch().inputs for loader in ranks]
        assert torch.equal(mine[0], rows[0::2]) and torch.equal(mine[1], rows[1::2])
    assert all(loader.state_dict() == whole.state_dict() for loader in ranks)
    for loader in (whole, *ranks):
        loader.close()
