"""Tokenizer training: atomic specials, single digits, sizes, determinism, HF loading, errors."""

from __future__ import annotations

import json
import os

import pytest
from tokenizers import Tokenizer

from smelt.corpus.config import PiiConfig
from smelt.errors import ConfigError, InputError
from smelt.prep.specials import CHAT_TEMPLATE, CONTROL_TOKENS, EOS, special_tokens
from smelt.prep.tokenizer import train_tokenizer
from smelt.prep.tokenizer_files import check_tokenizer, load_tokenizer
from tests.shards.corpus_factory import stdlib_sources, write_corpus

DEFAULT_SPECIALS = special_tokens(PiiConfig().placeholders.values())


def test_specials_are_atomic_and_round_trip(tiny_tokenizer):
    tokenizer = Tokenizer.from_file(os.path.join(tiny_tokenizer, "tokenizer.json"))
    placeholders = list(PiiConfig().placeholders.values())
    assert set(CONTROL_TOKENS) | set(placeholders) == set(DEFAULT_SPECIALS)
    for token in DEFAULT_SPECIALS:
        ids = tokenizer.encode(token).ids
        assert len(ids) == 1 and ids[0] == tokenizer.token_to_id(token), token
    assert tokenizer.token_to_id(EOS) == 0
    text = "Mail <EMAIL> from <PERSON>, id <US_SSN>.<|im_start|>user\nhi<|im_end|><think>x</think>"
    encoding = tokenizer.encode(text)
    for token in ("<EMAIL>", "<PERSON>", "<US_SSN>", "<|im_start|>", "<think>"):
        assert token in encoding.tokens
    assert tokenizer.decode(encoding.ids, skip_special_tokens=False) == text


def test_digits_are_never_merged(tiny_tokenizer):
    tokenizer = load_tokenizer(tiny_tokenizer)
    encoding = tokenizer.encode("In 2023, 1234567 users paid $99.50 for 3.11")
    digit_tokens = [t for t in encoding.tokens if any(c.isdigit() for c in t)]
    assert digit_tokens and all(sum(c.isdigit() for c in t) == 1 for t in digit_tokens)
    for token in tokenizer.get_vocab():
        assert sum(c.isdigit() for c in token) <= 1 or token in DEFAULT_SPECIALS, token
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    for merge in merges:
        left, right = merge if isinstance(merge, list) else merge.split(" ")
        assert not (left[-1:].isdigit() and right[:1].isdigit()), merge


def test_report_and_transformers_files(tiny_tokenizer):
    with open(os.path.join(tiny_tokenizer, "report.json")) as fh:
        report = json.load(fh)
    assert report["vocab_size"] == 1024 and report["eos_id"] == 0
    assert report["heldout_docs"] > 0 and 1.5 < report["bytes_per_token"] < 6
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    plain = PreTrainedTokenizerFast(tokenizer_file=os.path.join(tiny_tokenizer, "tokenizer.json"))
    reference = load_tokenizer(tiny_tokenizer)
    sample = "def f(x): return x + 42  # <EMAIL>"
    assert plain.encode(sample) == reference.encode(sample).ids
    with open(os.path.join(tiny_tokenizer, "tokenizer_config.json")) as fh:
        assert json.load(fh)["chat_template"] == CHAT_TEMPLATE
    auto = AutoTokenizer.from_pretrained(tiny_tokenizer)
    assert auto.eos_token == EOS and auto.pad_token == "<pad>"
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    rendered = auto.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    ids = auto(rendered)["input_ids"]
    assert ids.count(auto.convert_tokens_to_ids("<|im_start|>")) == 3
    assert auto.decode(ids) == rendered


def test_training_is_deterministic(tiny_corpus, tiny_tokenizer, tmp_path):
    train_tokenizer(tiny_corpus[0], str(tmp_path), vocab_size=1024)
    for name in ("tokenizer.json", "tokenizer_config.json", "report.json"):
        with open(os.path.join(tiny_tokenizer, name), "rb") as a, open(tmp_path / name, "rb") as b:
            assert a.read() == b.read(), name


def test_sample_is_bounded(tiny_corpus, tmp_path):
    report = train_tokenizer(tiny_corpus[0], str(tmp_path), vocab_size=600, sample_bytes=30_000)
    # each of the 3 partitions stops at the first document past its 10 kB share
    assert 30_000 <= report.sample_bytes < 30_000 + 3 * 5_000
    assert Tokenizer.from_file(str(tmp_path / "tokenizer.json")).get_vocab_size() <= 600


@pytest.fixture(scope="module")
def source_corpus(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("stdlib-corpus"))
    write_corpus(root, parts=2, docs=stdlib_sources(3_000_000))
    return root


def test_default_vocabulary_is_reached(source_corpus, tmp_path):
    report = train_tokenizer(source_corpus, str(tmp_path), vocab_size=16384, heldout_fraction=0.05)
    assert report.vocab_size == 16384
    tokenizer = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert tokenizer.get_vocab_size() == 16384 and report.bytes_per_token > 2.5


@pytest.mark.slow
def test_vocabulary_40960_is_reached_and_loads(tmp_path):
    """README's largest size, reached for real on ~12 MB of the standard library's sources
    (BPE adds merges in order, so every smaller size, 32,768 included, is reached on the way)."""
    from transformers import PreTrainedTokenizerFast

    write_corpus(str(tmp_path / "corpus"), parts=2, docs=stdlib_sources(14_000_000))
    report = train_tokenizer(str(tmp_path / "corpus"), str(tmp_path / "tok"), vocab_size=40960)
    assert report.vocab_size == 40960
    assert load_tokenizer(str(tmp_path / "tok")).get_vocab_size() == 40960
    hf = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tok" / "tokenizer.json"))
    assert len(hf) == 40960


def test_a_vocabulary_the_corpus_cannot_fill_is_reported_short_and_loads(tiny_corpus, tmp_path):
    """40,960 asked of a tiny corpus: training stops when no pair is left to merge; the report
    says how far it got, and that smaller tokenizer loads everywhere."""
    from transformers import PreTrainedTokenizerFast

    report = train_tokenizer(tiny_corpus[0], str(tmp_path), vocab_size=40960)
    assert report.requested_vocab_size == 40960
    assert 1024 < report.vocab_size < 40960
    assert load_tokenizer(str(tmp_path)).get_vocab_size() == report.vocab_size
    hf = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    assert len(hf) == report.vocab_size


def test_s3_corpus_and_output(s3_bucket, tiny_corpus, tiny_tokenizer):
    write_corpus(f"{s3_bucket}/corpus", parts=3)
    train_tokenizer(f"{s3_bucket}/corpus", f"{s3_bucket}/tok", vocab_size=1024)
    remote = load_tokenizer(f"{s3_bucket}/tok")
    assert remote.to_str() == load_tokenizer(tiny_tokenizer).to_str()


def test_bad_inputs_are_refused(tiny_corpus, tmp_path):
    write_corpus(str(tmp_path / "unfinished"), parts=1, limit=10, with_stats=False)
    with pytest.raises(InputError, match="stats.json is missing"):
        train_tokenizer(str(tmp_path / "unfinished"), str(tmp_path / "out"))
    with pytest.raises(InputError, match="not found"):
        train_tokenizer(str(tmp_path / "absent"), str(tmp_path / "out"))
    with pytest.raises(ConfigError, match="vocab-size"):
        train_tokenizer(tiny_corpus[0], str(tmp_path / "out"), vocab_size=100)
    with pytest.raises(ConfigError, match="uint32"):
        train_tokenizer(tiny_corpus[0], str(tmp_path / "out"), vocab_size=2**32 + 1)
    assert not (tmp_path / "out").exists()


def test_vocabulary_beyond_uint32_is_refused(tiny_tokenizer):
    real = load_tokenizer(tiny_tokenizer)

    class Huge:  # the real tokenizer, claiming more ids than uint32 shards can store
        def get_vocab_size(self, with_added_tokens: bool = True) -> int:
            return 2**32 + 1

        def token_to_id(self, token: str) -> int | None:
            return real.token_to_id(token)

    check_tokenizer(real, "tokenizer.json")
    with pytest.raises(ConfigError, match="exceeds uint32"):
        check_tokenizer(Huge(), "big/tokenizer.json")
