"""Data preparation: a finished corpus -> a BPE tokenizer -> uint32 token shards.

Domain code, no Prefect (tasks/ and flows/ wrap it):

    layout.py          where a tokenizer and a shard set put their files (the only place)
    corpus_input.py    a finished corpus as preparation reads it: partitions, identity, placeholders
    specials.py        the tokenizer's atomic tokens and chat template
    sample.py          the tokenizer's streamed training sample and held-out documents
    tokenizer.py       tokenizer training, its report, `is_current`
    tokenizer_files.py the tokenizer's files: writing them, loading and checking a tokenizer
    shard_format.py    the manifest and shard entries (ARCHITECTURE.md, "Shards"), `open_manifest`
    shard_check.py     the one integrity check of a shard; `smelt shards verify`
    shard_plan.py      a shard build's checked inputs and fingerprints
    tokenize.py        step 1: a corpus partition into token intermediates
    packing.py         step 2: intermediates into shards of a bounded size
    shards.py          the build on an executor, `build_shards`, `is_current`
"""
