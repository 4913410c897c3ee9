"""Supervised fine-tuning: a trained run + conversations -> a chat model (`smelt sft`).

Domain code, no Prefect (tasks/ and flows/ wrap it):

    config.py   `SFTConfig`: the base, the conversation files, how to read them, training settings
    run.py      `prepare` (check the base, tokenize once, chat template) and `run_sft`

The pieces it puts together live where they belong: reading and tokenizing conversations in
`smelt.prep` (`conversation_records`, `conversation_build`, `conversation_shards`), the packed
batches and starting from a base in `smelt.training` (`conversations`, `warm_start`), ChatML
rendering and the assistant mask in `smelt.chat`.
"""
