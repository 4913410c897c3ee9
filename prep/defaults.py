"""Default settings of data preparation, in a module light enough for the command line to read
without importing the tokenizer or Arrow."""

DEFAULT_VOCAB_SIZE = 16384
DEFAULT_SAMPLE_BYTES = 256 * 1024 * 1024  # ~25 s of BPE training here; plenty for <= 64k vocab
DEFAULT_HELDOUT_FRACTION = 0.01
DEFAULT_HELDOUT_MAX_BYTES = 4 * 1024 * 1024
DEFAULT_SHARD_TOKENS = 100_000_000
DEFAULT_VAL_FRACTION = 0.01

# fine-tuning conversations (prep.conversation_build)
CONVERSATION_VAL_FRACTION = 0.05
LONG_POLICIES = ("truncate", "drop")  # a conversation longer than --seq-len: cut or left out
