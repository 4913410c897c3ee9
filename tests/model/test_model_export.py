"""Hugging Face export: transformers loads the folder without trust_remote_code and reproduces
smelt's logits; unsupported features are refused by name; import round-trips."""

import json

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer

from smelt.errors import ConfigError
from smelt.model import Decoder, export_hf, import_hf


@pytest.mark.parametrize(
    ("changes", "architecture"),
    [
        ({"qk_norm": False}, "LlamaForCausalLM"),
        ({"qk_norm": True}, "Qwen3ForCausalLM"),
        ({"qk_norm": False, "tie_embeddings": False, "n_kv_heads": 4}, "LlamaForCausalLM"),
    ],
)
def test_transformers_reproduces_logits(make_model, tmp_path, changes, architecture):
    model = make_model(**changes)
    export_hf(model, tmp_path)
    hf = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(hf).__name__ == architecture
    assert hf.config.tie_word_embeddings == model.config.tie_embeddings
    tokens = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        ours, theirs = model.logits(tokens), hf(tokens).logits.float()
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"bitnet": True}, "bitnet"),
        ({"attn_softcap": 50.0}, "attn_softcap"),
        ({"final_softcap": 30.0}, "final_softcap"),
        ({"activation": "relu2"}, "relu2"),
    ],
)
def test_export_refuses_features_without_an_hf_equivalent(make_model, tmp_path, changes, named):
    with pytest.raises(ConfigError, match=named):
        export_hf(make_model(**changes), tmp_path / "out")
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.parametrize("qk_norm", [False, True])
def test_import_round_trip(make_model, tmp_path, qk_norm):
    model = make_model(qk_norm=qk_norm)
    export_hf(model, tmp_path)
    config, state = import_hf(tmp_path)
    assert config == model.config
    back = Decoder(config)
    back.load_state_dict(state, strict=True)
    tokens = torch.randint(0, 97, (1, 16))
    with torch.no_grad():
        assert torch.equal(back.eval().logits(tokens), model.logits(tokens))


def _tokenizer_file(path):
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=97,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(["hello world", "the quick brown fox"] * 20, trainer=trainer)
    tok.save(str(path))
    return tok


def test_export_writes_a_tokenizer_that_autotokenizer_loads(make_model, tmp_path):
    tok = _tokenizer_file(tmp_path / "tokenizer.json")
    folder = tmp_path / "hf"
    model = make_model(vocab_size=tok.get_vocab_size())
    export_hf(model, folder, tokenizer_path=tmp_path / "tokenizer.json")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (folder / name).is_file(), name
    hf_tok = AutoTokenizer.from_pretrained(folder)
    assert hf_tok.encode("hello world") == tok.encode("hello world").ids
    assert hf_tok.eos_token == "<|endoftext|>" and hf_tok.pad_token == "<pad>"
    config = json.loads((folder / "config.json").read_text())
    assert config["eos_token_id"] == tok.token_to_id("<|endoftext|>")
    # the model beside it reads what this tokenizer writes, with smelt's logits
    hf_model = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert hf_model.config.vocab_size == tok.get_vocab_size()
    ids = hf_tok("the quick brown fox", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        theirs, ours = hf_model(ids).logits.float(), model.logits(ids)
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=0)
