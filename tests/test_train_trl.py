"""Loss parity with TRL's SFTTrainer (completion-only loss) on a tiny model: same initial weights, data, order
and hyperparameters (global batch 8 = 4 x 2 accumulation, warmup then cosine, clip 1.0, AdamW).

Tolerance: per-step losses within 1e-5 relative, weights after 3 steps within 1e-5 absolute (float sums run
in a different order). Weight decay is 0 here on purpose: HF's Trainer exempts biases and norm weights from
decay, the study's verl trainer (and ours) decays every parameter."""
from __future__ import annotations


import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

import tiny  # noqa: E402

torch.set_num_threads(1)


def test_loss_parity_with_trl_sft_trainer(tmp_path):
    import datasets
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from curate.train import load_config, train_from_config
    from curate.train.model import debug_config

    tok = tiny.make_tokenizer(tmp_path / "tok")
    rows = tiny.rows(24, seed=5)
    tiny.write_jsonl(tmp_path / "data.jsonl", rows)
    cfg_path = tiny.write_config(
        tmp_path / "cfg.yaml", tmp_path / "tok", tmp_path / "data.jsonl", tmp_path / "ours",
        model={"name_or_path": str(tmp_path / "init"), "attn_implementation": "sdpa"},
        data={"micro_batch_size": 4, "shuffle": False, "max_length": 256},
        train={"global_batch_size": 8, "epochs": 1, "lr": 1e-3, "weight_decay": 0.0, "warmup_ratio": 0.3, "seed": 7},
        parallel={"activation_checkpointing": "none"}, checkpoint={"every": None, "steps": []},
    )
    # the shared starting point: a debug-shaped model saved as a normal HF folder
    cfg = load_config(cfg_path, ["model.name_or_path=debug", f"model.tokenizer={tmp_path / 'tok'}"])
    torch.manual_seed(0)
    init = AutoModelForCausalLM.from_config(debug_config(cfg, len(tok), tok), dtype=torch.float32)
    init.save_pretrained(tmp_path / "init")
    tok.save_pretrained(tmp_path / "init")

    train_from_config(cfg_path, echo=lambda *a: None)
    import json

    ours = [json.loads(x) for x in (tmp_path / "ours" / "metrics.jsonl").read_text().splitlines()]

    ds = datasets.Dataset.from_list([{"prompt": r[:-1], "completion": r[-1:]} for r in rows])
    args = SFTConfig(
        output_dir=str(tmp_path / "trl"), per_device_train_batch_size=4, gradient_accumulation_steps=2,
        num_train_epochs=1, learning_rate=1e-3, weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.999,
        adam_epsilon=1e-8, optim="adamw_torch", lr_scheduler_type="cosine", warmup_steps=1, max_grad_norm=1.0,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, bf16=False, seed=7, max_length=256,
        completion_only_loss=True, train_sampling_strategy="sequential", dataloader_num_workers=0,
    )
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "init", dtype=torch.float32, attn_implementation="sdpa")
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    trainer.train()
    theirs = [h for h in trainer.state.log_history if "loss" in h]

    assert len(ours) == len(theirs) == 3
    for o, t in zip(ours, theirs):
        assert o["loss"] == pytest.approx(t["loss"], rel=1e-5), (o, t)
        assert o["grad_norm"] == pytest.approx(t["grad_norm"], rel=1e-4)
        assert o["lr"] == pytest.approx(t["learning_rate"], rel=1e-6)
    final = AutoModelForCausalLM.from_pretrained(tmp_path / "ours" / "checkpoints" / "step-000003", dtype=torch.float32)
    mine = dict(final.named_parameters())
    for name, p in trainer.model.named_parameters():
        assert torch.allclose(mine[name], p.detach(), atol=1e-5), name
