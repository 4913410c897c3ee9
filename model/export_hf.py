"""Export to / import from Hugging Face transformers folders (no `trust_remote_code`).

A smelt decoder without QK-norm is exactly `LlamaForCausalLM`; with QK-norm it is exactly
`Qwen3ForCausalLM` (per-head RMSNorm on q and k before RoPE, explicit `head_dim`). Both use the
"rotate half" RoPE layout that rope.py uses, so projection weights map one to one with no
permutation, and a tied head becomes `tie_word_embeddings=True` with no `lm_head.weight` stored.
Features with no counterpart in those classes are refused by name rather than exported wrongly.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from smelt.errors import ConfigError, InputError, IntegrityError
from smelt.model.checkpoint_io import clean_state_dict
from smelt.model.config import ModelConfig
from smelt.model.decoder import Decoder

_TOP = {
    "embed.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "lm_head.weight": "lm_head.weight",
}
_LAYER = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    **{
        f"attn.{p}.weight": f"self_attn.{p}.weight"
        for p in ("q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm")
    },
    **{f"ffn.{p}.weight": f"mlp.{p}.weight" for p in ("gate_proj", "up_proj", "down_proj")},
}
_TOP_BACK = {v: k for k, v in _TOP.items()}
_LAYER_BACK = {v: k for k, v in _LAYER.items()}
# Special tokens looked up in the tokenizer (ARCHITECTURE.md, Tokenizer).
EOS_TOKEN, PAD_TOKEN = "<|endoftext|>", "<pad>"
END_OF_TURN_TOKEN = "<|im_end|>"  # ChatML's end of turn: a chat model's end of sequence


def hf_architecture(config: ModelConfig) -> str:
    """'LlamaForCausalLM' or 'Qwen3ForCausalLM'; ConfigError naming what cannot be exported."""
    unsupported = [
        name
        for name, on in (
            ("bitnet", config.bitnet),
            ("attn_softcap", config.attn_softcap is not None),
            ("final_softcap", config.final_softcap is not None),
            ("activation='relu2'", config.activation == "relu2"),
        )
        if on
    ]
    if unsupported:
        raise ConfigError(
            f"cannot export to transformers: {', '.join(unsupported)} has no equivalent in "
            "LlamaForCausalLM/Qwen3ForCausalLM; keep the smelt checkpoint (safetensors) for "
            "this model, or train a config without these features to get an HF export"
        )
    return "Qwen3ForCausalLM" if config.qk_norm else "LlamaForCausalLM"


def to_hf_key(key: str) -> str:
    if key in _TOP:
        return _TOP[key]
    parts = key.split(".", 2)
    if parts[0] == "layers" and len(parts) == 3 and parts[2] in _LAYER:
        return f"model.layers.{parts[1]}.{_LAYER[parts[2]]}"
    raise ConfigError(f"parameter {key!r} has no transformers counterpart")


def from_hf_key(key: str) -> str:
    if key in _TOP_BACK:
        return _TOP_BACK[key]
    parts = key.split(".", 3)
    if parts[:2] == ["model", "layers"] and len(parts) == 4 and parts[3] in _LAYER_BACK:
        return f"layers.{parts[2]}.{_LAYER_BACK[parts[3]]}"
    raise IntegrityError(f"unexpected tensor {key!r} in the Hugging Face checkpoint")


def _write_tokenizer(
    tokenizer_path: Path, folder: Path, max_len: int, chat_template: str | None = None
) -> dict[str, int]:
    """tokenizer.json (copied byte for byte) + tokenizer_config.json + special_tokens_map.json.

    The config names `PreTrainedTokenizerFast`, which both transformers 4.x and 5.x resolve,
    and only the special tokens the tokenizer really has. With a chat template (a fine-tuned
    run) the config carries it and names `<|im_end|>` the end-of-sequence token, as chat models
    on the Hub do, so `apply_chat_template` renders the prompts smelt rendered and generation
    ends with the turn. Returns {"eos_token_id": ..., ...}.
    """
    from tokenizers import Tokenizer

    if not tokenizer_path.is_file():
        raise InputError(f"tokenizer file {tokenizer_path} does not exist")
    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
    except Exception as exc:  # the Rust loader raises plain Exception subclasses
        raise InputError(f"{tokenizer_path} is not a Hugging Face tokenizer.json: {exc}") from exc
    eos = EOS_TOKEN
    if chat_template is not None:
        if tokenizer.token_to_id(END_OF_TURN_TOKEN) is None:
            raise ConfigError(
                f"{tokenizer_path} has no {END_OF_TURN_TOKEN} token, but the run has a chat "
                "template; export the base run, or fine-tune from a ChatML tokenizer"
            )
        eos = END_OF_TURN_TOKEN
    specials = {
        role: token
        for role, token in (("eos_token", eos), ("pad_token", PAD_TOKEN))
        if tokenizer.token_to_id(token) is not None
    }
    shutil.copyfile(tokenizer_path, folder / "tokenizer.json")
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_len,
        "clean_up_tokenization_spaces": False,
        **specials,
    }
    if chat_template is not None:
        tokenizer_config["chat_template"] = chat_template
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    (folder / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
    ids = {f"{role}_id": tokenizer.token_to_id(token) for role, token in specials.items()}
    if chat_template is not None and tokenizer.token_to_id(EOS_TOKEN) is not None:
        ids["end_of_text_id"] = tokenizer.token_to_id(EOS_TOKEN)
    return ids


def _write_generation_config(folder: Path, special_ids: dict[str, int]) -> None:
    """generation_config.json of a chat model: stop at the end of the turn or of the text."""
    stops = [special_ids["eos_token_id"], special_ids.get("end_of_text_id")]
    config = {
        "eos_token_id": [i for i in stops if i is not None],
        "pad_token_id": special_ids.get("pad_token_id"),
    }
    (folder / "generation_config.json").write_text(json.dumps(config, indent=2))


def export_hf(
    model: Decoder | tuple[ModelConfig, Mapping[str, torch.Tensor]],
    folder: str | Path,
    *,
    tokenizer_path: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
    chat_template: str | None = None,
) -> Path:
    """Write config.json, model.safetensors (and the tokenizer, if given) into `folder`,
    loadable by `transformers.AutoModelForCausalLM.from_pretrained(folder)`. `chat_template`
    (a fine-tuned run's) goes into the tokenizer config, with `<|im_end|>` as end of turn."""
    from transformers import LlamaConfig, Qwen3Config

    config, state = (model.config, model.state_dict()) if isinstance(model, Decoder) else model
    architecture = hf_architecture(config)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    special_ids = {}
    if tokenizer_path is not None:
        special_ids = _write_tokenizer(
            Path(tokenizer_path), folder, config.max_seq_len, chat_template
        )
    elif chat_template is not None:
        raise InputError("a chat template needs the tokenizer beside it; pass tokenizer_path")
    fields = dict(
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        intermediate_size=config.ffn_hidden,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_kv_heads,
        head_dim=config.head_dim,
        hidden_act="silu",
        max_position_embeddings=config.max_seq_len,
        initializer_range=config.init_std,
        rms_norm_eps=config.norm_eps,
        rope_theta=float(config.rope_theta),
        tie_word_embeddings=config.tie_embeddings,
        attention_bias=False,
        attention_dropout=0.0,
        bos_token_id=None,
        eos_token_id=special_ids.get("eos_token_id"),
        pad_token_id=special_ids.get("pad_token_id"),
        architectures=[architecture],
        dtype=str(dtype).removeprefix("torch."),
    )
    hf_config = Qwen3Config(**fields) if config.qk_norm else LlamaConfig(**fields, mlp_bias=False)
    hf_config.save_pretrained(str(folder))
    if chat_template is not None:
        _write_generation_config(folder, special_ids)
    tensors = {}
    for key, value in clean_state_dict(state).items():
        if key == "lm_head.weight" and config.tie_embeddings:
            continue
        tensors[to_hf_key(key)] = value.detach().to(dtype).contiguous().cpu()
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def _rope_theta(hf: dict) -> float:
    params = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type != "default":
        raise ConfigError(f"RoPE scaling {rope_type!r} is not supported by smelt's decoder")
    return float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))


def import_hf(folder: str | Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Read a Llama/Qwen3 folder (as written by `export_hf`) back into smelt's config and
    state dict, ready for `Decoder(config).load_state_dict(state)`."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise InputError(f"{folder} has no config.json; is it a Hugging Face model folder?")
    hf = json.loads(config_path.read_text(encoding="utf-8"))
    model_type = hf.get("model_type")
    if model_type not in ("llama", "qwen3"):
        raise ConfigError(f"{folder}: model_type {model_type!r} is not 'llama' or 'qwen3'")
    if hf.get("hidden_act", "silu") != "silu" or hf.get("attention_bias") or hf.get("mlp_bias"):
        raise ConfigError(f"{folder}: only SiLU-gated MLPs without biases are supported")
    if hf.get("use_sliding_window"):
        raise ConfigError(f"{folder}: sliding-window attention is not supported")
    heads, hidden = hf["num_attention_heads"], hf["hidden_size"]
    if hf.get("head_dim") not in (None, hidden // heads):
        raise ConfigError(f"{folder}: head_dim {hf['head_dim']} != hidden_size / num_heads")
    config = ModelConfig(
        vocab_size=hf["vocab_size"],
        d_model=hidden,
        n_layers=hf["num_hidden_layers"],
        n_heads=heads,
        n_kv_heads=hf.get("num_key_value_heads") or heads,
        ffn_hidden=hf["intermediate_size"],
        max_seq_len=hf.get("max_position_embeddings", 2048),
        rope_theta=_rope_theta(hf),
        norm_eps=hf.get("rms_norm_eps", 1e-6),
        qk_norm=model_type == "qwen3",
        tie_embeddings=bool(hf.get("tie_word_embeddings")),
        init_std=hf.get("initializer_range", 0.02),
    )
    state: dict[str, torch.Tensor] = {}
    index_path = folder / "model.safetensors.index.json"
    files = (
        sorted(set(json.loads(index_path.read_text())["weight_map"].values()))
        if index_path.is_file()
        else ["model.safetensors"]
    )
    for name in files:
        if not (folder / name).is_file():
            raise InputError(f"{folder / name} is missing")
        for key, value in load_file(str(folder / name)).items():
            state[from_hf_key(key)] = value
    if config.tie_embeddings:
        state.pop("lm_head.weight", None)
    return config, state
