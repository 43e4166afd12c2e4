"""Checkpoints: Hugging Face exports (safetensors + config + tokenizer, loadable by vLLM/lm-eval as is) and a
separate resumable state written with torch.distributed.checkpoint (sharded model + optimizer) plus the
scheduler, the step (= data position, the order is a pure function of it) and every rank's RNG.

Layout under output_dir: `checkpoints/step-000010/` (HF), `state/step-000010/` (resume), a state counts only
once its `COMPLETE` marker exists, so a kill during a save leaves the previous state as the latest.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)

from curate.train.layout import MARKER, latest_state, model_fingerprint, step_name, write_atomic  # noqa: F401  (re-exported for the loop)


def export_steps(ckpt_cfg, total_steps: int) -> set[int]:
    """HF exports: the listed steps, every k-th, and always the last step (the launcher has already refused
    listed steps past the end)."""
    steps = {s for s in ckpt_cfg.steps if 1 <= s <= total_steps}
    if ckpt_cfg.every:
        steps |= set(range(ckpt_cfg.every, total_steps + 1, ckpt_cfg.every))
    steps.add(total_steps)
    return steps


def _test_kill(where: str, step: int) -> None:
    """Test hook: CURATE_TRAIN_KILL_IN_SAVE=hf:N or state:N exits abruptly in the middle of that save."""
    if os.environ.get("CURATE_TRAIN_KILL_IN_SAVE") == f"{where}:{step}":
        os._exit(17)


def state_steps(ckpt_cfg, total_steps: int) -> set[int]:
    if ckpt_cfg.state_every:
        return set(range(ckpt_cfg.state_every, total_steps + 1, ckpt_cfg.state_every)) | {total_steps}
    return export_steps(ckpt_cfg, total_steps)


def save_hf(model, lm, tokenizer, folder: Path, dtype: torch.dtype, rank: int, marker: dict) -> None:
    """Gather the full weights to rank 0's CPU and write a standard HF folder, plus `curate_checkpoint.json`
    (`marker`: step and lineage), then rename it into place: a folder under its final name is complete.
    Collective: call on all ranks."""
    from huggingface_hub import split_torch_state_dict_into_shards
    from safetensors.torch import save_file

    sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank != 0:
        return
    sd = {k.removeprefix("lm."): v.to(dtype).contiguous() for k, v in sd.items()}
    tie = getattr(lm.config.get_text_config(), "tie_word_embeddings", False)
    head = [n for n, m in lm.named_modules() if m is lm.get_output_embeddings()]
    if tie and head:
        sd.pop(f"{head[0]}.weight", None)  # tied: HF stores the embedding once
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    split = split_torch_state_dict_into_shards(sd, max_shard_size="5GB")
    for fname, keys in split.filename_to_tensors.items():
        save_file({k: sd[k] for k in keys}, str(tmp / fname), metadata={"format": "pt"})
    if split.is_sharded:
        index = {"metadata": {"total_size": sum(v.numel() * v.element_size() for v in sd.values())},
                 "weight_map": split.tensor_to_filename}
        (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    config = lm.config.__class__.from_dict(lm.config.to_dict())
    config.dtype = dtype
    config.architectures = [type(lm).__name__]
    config.save_pretrained(tmp)
    if getattr(lm, "generation_config", None) is not None:
        lm.generation_config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    marker = {**marker, "fingerprint": model_fingerprint(tmp)}  # what evaluation identifies this model by
    (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    _test_kill("hf", marker["step"])
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def save_state(model, optimizer, scheduler, step: int, extra: dict, folder: Path, rank: int, keep: int) -> None:
    """Sharded model + optimizer via DCP, then the small per-run and per-rank pieces, then the marker."""
    msd, osd = get_state_dict(model, optimizer)
    if rank == 0:
        shutil.rmtree(folder, ignore_errors=True)
    dist.barrier()
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(folder))
    rng = {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None}
    torch.save(rng, folder / f"rng-rank{rank}.pt")
    if rank == 0:
        meta = {"step": step, "scheduler": scheduler.state_dict(), **extra}
        torch.save(meta, folder / "train_state.pt")
    dist.barrier()
    if rank == 0:
        _test_kill("state", step)
        write_atomic(folder / "COMPLETE", str(step))
        states = sorted(p for p in folder.parent.glob("step-*") if (p / "COMPLETE").exists())
        for old in states[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    dist.barrier()


def load_state(model, optimizer, scheduler, folder: Path, rank: int) -> dict:
    """Restore everything save_state wrote; returns the run metadata (step, tokens seen, ...)."""
    msd, osd = get_state_dict(model, optimizer)
    state = {"model": msd, "optim": osd}
    dcp.load(state, checkpoint_id=str(folder))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    meta = torch.load(folder / "train_state.pt", weights_only=False)
    scheduler.load_state_dict(meta["scheduler"])
    rng_file = folder / f"rng-rank{rank}.pt"
    if rng_file.exists():  # a resume on more ranks than saved starts the extra ranks from the seed
        rng = torch.load(rng_file, weights_only=False)
        torch.set_rng_state(rng["cpu"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"])
    return meta
