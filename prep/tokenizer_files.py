"""A trained tokenizer on storage: the files transformers expects, and loading them back.

`tokenizer.json` is the Hugging Face `tokenizers` file (ARCHITECTURE.md, "Tokenizer"); beside it
`tokenizer_config.json`, `special_tokens_map.json` and `chat_template.jinja` let
`AutoTokenizer`/`PreTrainedTokenizerFast` find the specials and the ChatML template.
"""

from __future__ import annotations

import json
from typing import Any

from smelt import storage
from smelt.errors import ConfigError, InputError
from smelt.prep.layout import TokenizerLayout
from smelt.prep.specials import CHAT_TEMPLATE, EOS, PAD

MAX_VOCAB_SIZE = 2**32  # token ids are stored as uint32


def save_tokenizer_files(tokenizer: Any, specials: tuple[str, ...], output_uri: str) -> str:
    """Write tokenizer.json and transformers' files into `output_uri`; the tokenizer's SHA-256.

    `tokenizer.json` holds exactly the bytes the returned checksum covers (and that shard
    manifests record as `tokenizer_sha256`).
    """
    layout = TokenizerLayout.at(output_uri)
    data = tokenizer.to_str().encode("utf-8")
    additional = [t for t in specials if t not in (EOS, PAD)]
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": EOS,
        "pad_token": PAD,
        "bos_token": None,
        "unk_token": None,
        "additional_special_tokens": additional,
        "added_tokens_decoder": {
            str(tokenizer.token_to_id(t)): {
                "content": t,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for t in specials
        },
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1_000_000_000,
    }
    special_map = {"eos_token": EOS, "pad_token": PAD, "additional_special_tokens": additional}
    storage.write_bytes(layout.tokenizer, data)
    storage.write_bytes(layout.config, json_bytes(config))
    storage.write_bytes(layout.special_tokens_map, json_bytes(special_map))
    storage.write_bytes(layout.chat_template, CHAT_TEMPLATE.encode("utf-8"))
    return storage.sha256_bytes(data)


def json_bytes(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def load_tokenizer(uri: str) -> Any:
    """A trained tokenizer (`tokenizers.Tokenizer`) from a directory or a .json URI."""
    from tokenizers import Tokenizer

    file_uri = TokenizerLayout.file_uri(uri)
    if not storage.exists(file_uri):
        raise InputError(f"tokenizer not found: {file_uri}; run `smelt tokenizer train` first")
    text = storage.read_text(file_uri)
    try:
        tokenizer = Tokenizer.from_str(text)
    except Exception as exc:  # noqa: BLE001 - the Rust side raises plain Exception
        raise InputError(f"{file_uri} is not a Hugging Face tokenizer file: {exc}") from None
    check_tokenizer(tokenizer, file_uri)
    return tokenizer


def check_tokenizer(tokenizer: Any, where: str) -> None:
    """Refuse a tokenizer that uint32 shards cannot hold or that lacks the end-of-text token."""
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size > MAX_VOCAB_SIZE:
        raise ConfigError(
            f"{where}: vocabulary of {size:,} tokens exceeds uint32 ids "
            f"({MAX_VOCAB_SIZE:,}); train a smaller tokenizer"
        )
    if tokenizer.token_to_id(EOS) is None:
        raise ConfigError(f"{where}: no {EOS} token; train it with `smelt tokenizer train`")
