"""Evaluation: how good is a checkpoint, and which data made it so.

Plain library code (no Prefect), in lm-evaluation-harness 0.4's terms:

- `layouts`: rows of a task file (the published layouts of HellaSwag, ARC, PIQA, Winogrande,
  BoolQ, LAMBADA, or the generic `{"context", "choices", "label"}`) -> scoring requests, with
  the harness's own prompt formats;
- `sources`: where rows and texts come from (JSONL/Parquet/plain text, local, s3:// or the
  Hugging Face Hub);
- `scorer`: log-likelihoods of (context, continuation) pairs and rolling windows over texts,
  tokenized and truncated exactly as the harness's `HFLM` does, batched;
- `metrics`: acc, acc_norm, perplexity, bits per byte and their standard errors;
- `evaluator`: one checkpoint -> the results JSON of ARCHITECTURE.md; `report`: where results go,
  tables, and every checkpoint of a run against tokens seen (`plots` draws it);
- `in_training`: the callable the train loop runs; `heldout`: evaluation data from a corpus's
  own held-out documents;
- `ablation`: the data-ablation recipe and the ranked comparison of its variants.
"""
