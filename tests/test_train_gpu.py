"""GPU smoke test (skipped without CUDA): bf16 params + fp32 reduce, packing (flash-attn varlen when installed,
else sdpa_varlen), op-level selective AC, chunked cross-entropy, bf16 HF export; MFU and memory are logged."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)

import tiny  # noqa: E402


def test_gpu_bf16_packed_run(tmp_path):
    from transformers import AutoModelForCausalLM

    from curate.train import train_from_config

    tiny.make_tokenizer(tmp_path / "tok")
    tiny.write_jsonl(tmp_path / "data.jsonl", tiny.rows(64, seed=3))
    cfg = tiny.write_config(tmp_path / "c.yaml", tmp_path / "tok", tmp_path / "data.jsonl", tmp_path / "out",
                            data={"packing": True, "micro_batch_tokens": 1024},
                            parallel={"activation_checkpointing": "op", "loss_chunk_tokens": 64, "mixed_precision": "auto"},
                            checkpoint={"every": None, "steps": []},
                            launch={"nproc_per_node": 1})
    train_from_config(cfg, ["train.epochs=2"], echo=lambda *a: None)
    rows = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and rows[-1]["loss"] < rows[0]["loss"]
    assert rows[0]["mem_peak_gib"] > 0
    ck = tmp_path / "out" / "checkpoints" / "step-000016"
    assert json.loads((ck / "config.json").read_text())["dtype"] == "bfloat16"
    AutoModelForCausalLM.from_pretrained(ck)
