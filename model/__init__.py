"""smelt.model: the decoder, its presets, generation, weights I/O and Hugging Face export.

Plain PyTorch; nothing here imports Prefect. Typical use:

    from smelt.model import Decoder, get_preset
    model = Decoder(get_preset("test", vocab_size=tokenizer_vocab))
    loss = model(idx, targets).loss          # chunked cross-entropy, no full logits
    logits = model.logits(idx)               # (B, T, V) float32
    for token in stream(model, prompt_ids, max_new_tokens=50, temperature=0): ...
"""

from smelt.model.checkpoint_io import load_model, load_state, load_weights, save_weights
from smelt.model.config import ModelConfig
from smelt.model.decoder import Decoder, ModelOutput
from smelt.model.export_hf import export_hf, import_hf
from smelt.model.generate import generate, generate_stream, sample_next, stream
from smelt.model.loss import chunked_cross_entropy
from smelt.model.presets import PRESETS, get_preset

__all__ = [
    "PRESETS",
    "Decoder",
    "ModelConfig",
    "ModelOutput",
    "chunked_cross_entropy",
    "export_hf",
    "generate",
    "generate_stream",
    "get_preset",
    "import_hf",
    "load_model",
    "load_state",
    "load_weights",
    "sample_next",
    "save_weights",
    "stream",
]
