"""The `tiny` base models of CPU studies: a local tokenizer (no download) and a small random Llama, saved as
an ordinary Hugging Face folder so training loads it and evaluation scores it as step 0.

Sizes (a study model's `size`, `curate study tiny-model DIR --size NAME`):
- `bpe-64x2` (the default): curate's 320-token byte-level BPE tokenizer, width 64, 2 layers (~0.1M
  parameters): a plumbing check, too small to learn anything.
- `char-96x4`: the character-level tokenizer (`curate.generate.tiny.build_char_tokenizer`), width 96,
  4 layers, MLP 192 (~0.34M parameters): the CPU toy's model. It learns chained 2-digit sums from verified
  scratchpads in 1,200-1,600 steps of 16 rows (87-100% of held-out sums, greedy, at step 1,600 for three
  seeds), at 0.71x the step time of `char-128x4` (docs/study.md, "The CPU toy").
- `char-128x4`: the same tokenizer, width 128, 4 layers, MLP 384 (~0.8M parameters).

`curate study tiny-model DIR --seed 0` (a study node) builds it; same seed and size, same files.
Test: tests/test_study_run.py, tests/test_toy.py.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TinySize:
    tokenizer: str  # "bpe" or "char"
    hidden: int
    layers: int
    intermediate: int
    heads: int = 4
    kv_heads: int = 2
    params: float = 0.0  # approximate parameter count, for `curate study plan`'s estimate


SIZES = {
    "bpe-64x2": TinySize("bpe", 64, 2, 128, params=1e5),
    "char-96x4": TinySize("char", 96, 4, 192, params=3.4e5),
    "char-128x4": TinySize("char", 128, 4, 384, params=8e5),
}
DEFAULT_SIZE = "bpe-64x2"


def build_study_model(path: str | Path, seed: int = 0, hidden: int | None = None, layers: int | None = None,
                      max_positions: int = 4096, size: str = DEFAULT_SIZE) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from curate.generate.tiny import build_char_tokenizer, build_tiny_tokenizer

    if size not in SIZES:
        raise ValueError(f"unknown tiny model size {size!r}; choose one of {', '.join(SIZES)}")
    z = SIZES[size]
    hidden = hidden or z.hidden
    intermediate = z.intermediate if hidden == z.hidden else 2 * hidden
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tok = build_char_tokenizer(tmp) if z.tokenizer == "char" else build_tiny_tokenizer(tmp)
        torch.manual_seed(seed)
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=intermediate,
                          num_hidden_layers=layers or z.layers, num_attention_heads=z.heads, num_key_value_heads=z.kv_heads,
                          max_position_embeddings=max_positions, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, tie_word_embeddings=True)
        LlamaForCausalLM(cfg).save_pretrained(tmp)
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
