"""`curate train`: validate everything, tokenize once, then run torchrun (one process per device; with a
single device on a single node the launcher process itself is the one rank, saving torchrun's start-up).

Every user error (bad config, missing model path, a dataset without `messages`, an existing output
directory, a resume state that does not match the config, too few samples) is raised here as one
CurateError *before* any process group starts. Multi-node: run the same command on every node with
`--set launch.nnodes=N --set launch.node_rank=K --set launch.master_addr=HOST` (or launch.rdzv_endpoint)
and an output_dir on shared storage; node 0 validates and tokenizes before it joins the rendezvous, so
the other nodes' ranks find the data ready once training starts.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import yaml

from curate.errors import ConfigError, CurateError, InputError
from curate.train.config import TrainConfig, diff_fingerprints, fingerprint, load_config
from curate.train.layout import is_local_path, latest_state
from curate.train.data import load_messages, prepare, steps_per_epoch, validate_messages


def _check_model(cfg: TrainConfig) -> None:
    for field, value in (("model.name_or_path", cfg.model.name_or_path), ("model.tokenizer", cfg.model.tokenizer)):
        if value is None or value == "debug":
            continue
        p = Path(value).expanduser()
        if is_local_path(value) and not p.exists():
            raise InputError(f"{field}: '{value}' does not exist", hint="give a local model folder or a hub id like Qwen/Qwen3-1.7B-Base")
        if p.exists() and not (p / "config.json").exists() and field == "model.name_or_path":
            raise InputError(f"{field}: '{value}' has no config.json (not a Hugging Face model folder)")


def _check_output_dir(cfg: TrainConfig, out: Path, resume: bool) -> None:
    if not resume:
        if out.exists() and any(out.iterdir()):
            raise InputError(f"output_dir '{out}' already exists and is not empty",
                             hint="pass --resume to continue that run, or choose another output_dir")
        return
    saved = out / "config.yaml"
    if not saved.exists():
        raise InputError(f"--resume: '{out}' holds no run (no config.yaml)", hint="start it without --resume")
    old = fingerprint(TrainConfig.model_validate(yaml.safe_load(saved.read_text())))
    diffs = diff_fingerprints(old, fingerprint(cfg))
    if diffs:
        raise ConfigError(f"--resume: the config does not match the run in '{out}': " + "; ".join(diffs),
                          hint="only checkpoint, logging, launch and train.max_steps may change on resume")
    if latest_state(out) is None:
        raise InputError(f"--resume: '{out}' has no complete resumable state yet",
                         hint="set checkpoint.state_every, or start over in a new output_dir")


def _digest(data) -> str:
    h = hashlib.sha256()
    for arr in (data.tokens, data.offsets, data.prompt_lens):
        h.update(memoryview(arr.tobytes()))
    return h.hexdigest()[:16]


def prepare_run(cfg: TrainConfig, resume: bool, echo=print) -> dict:
    """Everything before torchrun: checks, tokenization + length policy (counted), the run folder."""
    out = Path(cfg.output_dir).expanduser()
    _check_model(cfg)
    if cfg.launch.node_rank > 0:
        return {}
    _check_output_dir(cfg, out, resume)
    rows = load_messages(cfg.data.path, cfg.data.split, cfg.data.messages_field)
    validate_messages(rows, cfg.data.path)
    from curate.train.loop import load_tokenizer

    try:
        tokenizer = load_tokenizer(cfg)
    except (OSError, ValueError) as e:
        raise InputError(f"model.tokenizer: cannot load '{cfg.model.tokenizer or cfg.model.name_or_path}' ({e})") from None
    if tokenizer.chat_template is None:
        raise InputError(f"tokenizer '{cfg.model.tokenizer or cfg.model.name_or_path}' has no chat template",
                         hint="use a tokenizer with a chat_template (base models: take the instruct model's tokenizer)")
    data, report = prepare(tokenizer, rows, cfg.data, cfg.data.path)
    G = cfg.train.global_batch_size
    if len(data) < G:
        raise InputError(f"{cfg.data.path}: only {len(data)} samples survive the length policy, fewer than "
                         f"train.global_batch_size={G}", hint="lower train.global_batch_size or check data.max_length")
    report["digest"] = _digest(data)
    report["steps_per_epoch"] = steps_per_epoch(len(data), G)
    report["dropped_remainder_per_epoch"] = len(data) - report["steps_per_epoch"] * G
    if resume:
        old = json.loads((out / "data_report.json").read_text())
        if old.get("digest") != report["digest"]:
            raise ConfigError(f"--resume: the tokenized data differs from the run in '{out}' (dataset or tokenizer changed)")
    else:
        out.mkdir(parents=True, exist_ok=True)
        data.save(out / "data")
        (out / "data_report.json").write_text(json.dumps(report, indent=2))
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return report


def torchrun_command(cfg: TrainConfig, resume: bool) -> list[str]:
    L = cfg.launch
    nproc = torchrun_nproc() if L.nproc_per_node == "auto" else L.nproc_per_node
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--nnodes={L.nnodes}"]
    if L.nnodes == 1 and not L.rdzv_endpoint:
        cmd.append("--standalone")  # picks a free port: several single-node runs never collide
    elif L.rdzv_endpoint:
        cmd += ["--rdzv_backend=c10d", f"--rdzv_endpoint={L.rdzv_endpoint}", f"--node_rank={L.node_rank}"]
    else:
        cmd += [f"--node_rank={L.node_rank}", f"--master_addr={L.master_addr}", f"--master_port={L.master_port}"]
    cmd += ["-m", "curate.train.loop", str(Path(cfg.output_dir).expanduser())]
    if resume:
        cmd.append("--resume")
    return cmd


def _single_process(cfg: TrainConfig) -> bool:
    return cfg.launch.nnodes == 1 and not cfg.launch.rdzv_endpoint and (
        cfg.launch.nproc_per_node == 1 or (cfg.launch.nproc_per_node == "auto" and torchrun_nproc() == 1))


def torchrun_nproc() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 1


def _run_here(out: Path, resume: bool) -> None:
    """One device: this process is the only rank (same loop, a 1-rank process group, no torchrun start-up)."""
    import os
    import socket

    from curate.train.loop import run

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "WORLD_SIZE": "1",
           "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        run(out, resume)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def train_from_config(config_path: str | Path, overrides: list[str] | None = None, resume: bool = False,
                      echo=print) -> Path:
    """Validate + prepare, then run torchrun and wait. Returns the output directory."""
    cfg = load_config(config_path, overrides)
    report = prepare_run(cfg, resume, echo)
    if report:
        echo(f"data: {report['kept']}/{report['rows']} rows kept ({report['policy']}: "
             f"{report['dropped_too_long']} dropped too long, {report['dropped_prompt_too_long']} dropped for the prompt, "
             f"{report['truncated']} truncated, {report['empty_response']} empty), {report['tokens']} tokens, "
             f"{report['steps_per_epoch']} steps/epoch")
    if _single_process(cfg):
        _run_here(Path(cfg.output_dir).expanduser(), resume)
        return Path(cfg.output_dir)
    rc = subprocess.call(torchrun_command(cfg, resume))
    if rc != 0:
        raise CurateError(f"training exited with status {rc}", hint=f"see the log above; resume with --resume from {cfg.output_dir}")
    return Path(cfg.output_dir)
