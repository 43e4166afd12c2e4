"""The `tiny` base model of CPU studies: curate's local tokenizer (no download) and a small random Llama,
saved as an ordinary Hugging Face folder so training loads it and evaluation scores it as step 0.

`curate study tiny-model DIR --seed 0` (a study node) builds it; same seed, same files.
Test: tests/test_study_run.py.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path


def build_study_model(path: str | Path, seed: int = 0, hidden: int = 64, layers: int = 2,
                      max_positions: int = 4096) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from curate.generate.tiny import build_tiny_tokenizer

    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tok = build_tiny_tokenizer(tmp)
        torch.manual_seed(seed)
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                          tie_word_embeddings=True)
        LlamaForCausalLM(cfg).save_pretrained(tmp)
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
