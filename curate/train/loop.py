"""The training loop, run once per rank under torchrun (`python -m curate.train.loop OUTPUT_DIR [--resume]`).

The launcher (curate/train/launch.py) has already validated the config, tokenized the data into
OUTPUT_DIR/data and written OUTPUT_DIR/config.yaml; this file only trains. One optimizer step:
  1. the global batch (a pure function of the step) is split across ranks, then into micro-batches;
  2. the response-token count of the *whole global batch* is all-reduced first;
  3. every micro-batch backprops sum(NLL) * world / count (FSDP averages gradients over ranks), so the
     gradient is the token mean over the global batch whatever the rank count or micro-batching
     (the study's trainer summed per-micro-batch means instead: its gradient scaled with the GPU count);
  4. clip, AdamW, scheduler, log, checkpoint.
Test hooks: CURATE_TRAIN_KILL_AT_STEP=N exits the process abruptly after step N (simulates a kill);
CURATE_TRAIN_PAUSE_AT_STEP=N sleeps after step N (a long step, for the shutdown tests);
CURATE_TRAIN_KILL_IN_SAVE=hf:N|state:N exits in the middle of that save (checkpoint.py).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from curate.train import checkpoint as ckpt
from curate.train.config import TrainConfig, load_config
from curate.train.guard import watch_launcher
from curate.train.layout import LINEAGE, lineage_for
from curate.train.data import TokenizedData, collate, global_batch_indices, micro_batches, split_ranks, steps_per_epoch
from curate.train.metrics import MetricsLog, memory_gib, peak_flops, train_flops
from curate.train.model import (SFTModel, apply_ac, apply_compile, apply_fsdp, build_meta_model, count_params,
                                debug_config, load_full_state, resolve_attn, retie)


def lr_lambda(cfg: TrainConfig, total: int):
    """Linear warmup from 0 then cosine (to min_lr_ratio) or constant: the formula of HF's
    get_cosine_schedule_with_warmup, which the study's verl trainer and TRL both use."""
    warm = int(math.ceil(cfg.train.warmup_ratio * total))
    floor = cfg.train.min_lr_ratio

    def f(step: int) -> float:
        if step < warm:
            return step / max(1, warm)
        if cfg.train.schedule == "constant":
            return 1.0
        progress = (step - warm) / max(1, total - warm)
        return floor + (1 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def load_tokenizer(cfg: TrainConfig):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(cfg.model.tokenizer or cfg.model.name_or_path,
                                        trust_remote_code=cfg.model.trust_remote_code)
    return tok


def hf_config_for(cfg: TrainConfig, tokenizer):
    from transformers import AutoConfig

    if cfg.model.name_or_path == "debug":
        return debug_config(cfg, len(tokenizer), tokenizer)
    return AutoConfig.from_pretrained(cfg.model.name_or_path, trust_remote_code=cfg.model.trust_remote_code)


def build(cfg: TrainConfig, device: torch.device, rank: int, tokenizer):
    """Meta-init, AC, compile, FSDP, allocate the shard, broadcast rank 0's weights."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    hf_config = hf_config_for(cfg, tokenizer)
    lm = build_meta_model(hf_config, resolve_attn(cfg))
    model = SFTModel(lm, cfg.parallel.loss_chunk_tokens)
    apply_ac(lm, cfg.parallel.activation_checkpointing, cfg.parallel.ac_every)
    if cfg.parallel.compile:
        apply_compile(lm)
    mp = cfg.parallel.mixed_precision == "bf16" or (cfg.parallel.mixed_precision == "auto" and device.type == "cuda")
    apply_fsdp(model, lm, mp, cfg.parallel.reshard_after_forward)
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    model.to_empty(device=device)
    for name, b in buffers.items():  # computed buffers (rotary inv_freq) survive to_empty
        mod_name, _, leaf = name.rpartition(".")
        mod = model.get_submodule(mod_name)
        mod.register_buffer(leaf, b.to(device), persistent=leaf not in mod._non_persistent_buffers_set)
    retie(lm)
    full = load_full_state(cfg, hf_config, tokenizer) if rank == 0 else {}
    set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    del full
    return model, lm, mp


def train(cfg: TrainConfig, out: Path, resume: bool) -> None:
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if torch.cuda.is_available() else torch.device("cpu")
    torch.manual_seed(cfg.train.seed)
    tokenizer = load_tokenizer(cfg)
    data = TokenizedData.load(out / "data")
    lengths = data.lengths
    G = cfg.train.global_batch_size
    schedule_steps = cfg.train.epochs * steps_per_epoch(len(data), G)
    total = min(cfg.train.max_steps or schedule_steps, schedule_steps)

    model, lm, mp = build(cfg, device, rank, tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, betas=tuple(cfg.train.betas), eps=cfg.train.eps,
                                  weight_decay=cfg.train.weight_decay, fused=device.type == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, schedule_steps))
    start, tokens_seen = 0, 0
    if resume:
        state = ckpt.latest_state(out)
        if state is not None:
            meta = ckpt.load_state(model, optimizer, scheduler, state, rank)
            start, tokens_seen = meta["step"], meta["tokens_seen"]

    total_params, dense_params = count_params(lm)
    hcfg = lm.config.get_text_config()
    peak = peak_flops()
    exports, states = ckpt.export_steps(cfg.checkpoint, total), ckpt.state_steps(cfg.checkpoint, total)
    save_dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}.get(cfg.checkpoint.save_dtype) or (torch.bfloat16 if mp else torch.float32)
    mbt = cfg.data.micro_batch_tokens or cfg.data.max_length
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    log = MetricsLog(out, total, start, cfg.logging.progress and sys.stderr.isatty(), cfg.logging.tensorboard,
                     cfg.logging.wandb_project, cfg.model_dump(mode="json")) if rank == 0 else None
    kill_at = int(os.environ.get("CURATE_TRAIN_KILL_AT_STEP", "0"))
    pause_at = int(os.environ.get("CURATE_TRAIN_PAUSE_AT_STEP", "0"))
    lineage = json.loads((out / LINEAGE).read_text()) if (out / LINEAGE).exists() else lineage_for(cfg)
    model.train()
    try:
        for step in range(start, total):
            t0 = time.perf_counter()
            idx = global_batch_indices(step, len(data), G, cfg.train.seed, cfg.data.shuffle)
            mine = split_ranks(idx, lengths, world)[rank]
            mbs = micro_batches(mine, lengths, cfg.data.packing, cfg.data.micro_batch_size, mbt)
            counts = torch.tensor([sum(int(lengths[i] - data.prompt_lens[i]) for i in mine), len(mbs)], device=device)
            n_resp = counts[:1].clone()
            dist.all_reduce(n_resp)  # response tokens in the whole global batch
            n_mb = counts[1:].clone()
            dist.all_reduce(n_mb, op=dist.ReduceOp.MAX)  # every rank runs as many forwards (FSDP collectives)
            mbs += [[] for _ in range(int(n_mb) - len(mbs))]
            scale = world / n_resp.double().item()
            nll_sum = torch.zeros((), device=device, dtype=torch.float64)
            for mb in mbs:
                batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in collate(data, mb, cfg.data.packing, pad_id).items()}
                nll, _ = model(**batch)
                (nll * scale).backward()
                nll_sum += nll.detach().double()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip or float("inf"), foreach=True)
            grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            dist.all_reduce(nll_sum)
            loss = nll_sum.item() / n_resp.item()
            dt = time.perf_counter() - t0
            step_tokens = int(lengths[idx].sum())
            tokens_seen += step_tokens
            if log is not None:
                row = {"step": step + 1, "epoch": step // steps_per_epoch(len(data), G), "loss": loss, "lr": lr,
                       "grad_norm": float(grad_norm), "tokens": step_tokens, "response_tokens": int(n_resp.item()),
                       "tokens_seen": tokens_seen, "tokens_per_s": step_tokens / dt, "step_time_s": dt, **memory_gib()}
                if peak:
                    flops = train_flops(dense_params, hcfg.num_hidden_layers, hcfg.hidden_size, step_tokens,
                                        int((lengths[idx].astype("int64") ** 2).sum()))
                    row["mfu"] = flops / dt / (peak * world)
                log.log(row)
            s = step + 1
            if s in exports:
                ckpt.save_hf(model, lm, tokenizer, out / "checkpoints" / ckpt.step_name(s), save_dtype, rank,
                             {"step": s, **lineage})
            if s in states:
                ckpt.save_state(model, optimizer, scheduler, s, {"tokens_seen": tokens_seen},
                                out / "state" / ckpt.step_name(s), rank, cfg.checkpoint.keep_states)
            if kill_at and s == kill_at:
                os._exit(17)  # no cleanup, no flush beyond what is already on disk: a kill
            if pause_at and s == pause_at:
                time.sleep(3600)
    finally:
        if log is not None:
            log.close()


def run(out: Path, resume: bool) -> None:
    """Per-rank entry: launcher watchdog, process group up, train, process group down (always)."""
    watch_launcher()
    cfg = load_config(out / "config.yaml")
    backend = cfg.launch.backend
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    try:
        train(cfg, out, resume)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    run(Path(sys.argv[1]), "--resume" in sys.argv[2:])
