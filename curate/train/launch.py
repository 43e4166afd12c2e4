"""`curate train`: validate everything, tokenize once, then run torchrun (one process per device; with a
single device on a single node the launcher process itself is the one rank, saving torchrun's start-up).

Every user error (bad config, missing model path, a dataset without `messages`, an existing output
directory, a resume state that does not match the config, too few samples, a checkpoint step past the
run's last step) is raised here as one CurateError *before* any process group starts. The launcher holds
the output_dir's run lock throughout, and the ranks stop with it (guard.py). Multi-node: run the same command on every node with
`--set launch.nnodes=N --set launch.node_rank=K --set launch.master_addr=HOST` (or launch.rdzv_endpoint)
and an output_dir on shared storage; node 0 validates and tokenizes before it joins the rendezvous, so
the other nodes' ranks find the data ready once training starts.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import yaml

from curate import cpus
from curate.errors import ConfigError, CurateError, InputError, first_line
from curate.train.config import TrainConfig, config_from_dict, diff_fingerprints, fingerprint, load_config
from curate.train.data import load_messages, prepare, steps_per_epoch, validate_messages
from curate.train.guard import RunLock, TrainingStopped, catchable_signals, run_torchrun
from curate.train.layout import (LINEAGE, LOCK_FILES, checkpoints, is_local_path, latest_state, lineage_for,
                                 state_step, write_atomic)
from curate.yamlfile import load_yaml


def _check_model(cfg: TrainConfig) -> None:
    for field, value in (("model.name_or_path", cfg.model.name_or_path), ("model.tokenizer", cfg.model.tokenizer)):
        if value is None or value == "debug":
            continue
        p = Path(value).expanduser()
        if is_local_path(value) and not p.exists():
            raise InputError(f"{field}: '{value}' does not exist", hint="give a local model folder or a hub id like Qwen/Qwen3-1.7B-Base")
        if p.exists() and not (p / "config.json").exists() and field == "model.name_or_path":
            raise InputError(f"{field}: '{value}' has no config.json (not a Hugging Face model folder)")


_PREP_LEFTOVERS = {"data", "data.tmp", "data_report.json", "lineage.json", *LOCK_FILES}


def _read_saved_config(saved: Path) -> TrainConfig:
    """The config a run was started with; a damaged file is one line, never a traceback."""
    try:
        raw = load_yaml(saved, what="training config")[0]
    except ConfigError as e:
        raise ConfigError(f"--resume: cannot read '{saved}' ({e.message})",
                          hint="restore it from the config you started the run with") from None
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"--resume: '{saved}' is empty or not a mapping",
                          hint="restore it from the config you started the run with")
    try:
        return config_from_dict(raw, f"--resume: {saved}")
    except ConfigError as e:
        raise ConfigError(e.message, hint="restore it from the config you started the run with") from None


def _leftovers(out: Path) -> list[Path]:
    """What a fresh start may clear from output_dir: files of a start killed while preparing (no config.yaml
    yet). Raises InputError when the folder holds anything else."""
    names = {p.name for p in out.iterdir()} if out.is_dir() else set()
    names -= set(LOCK_FILES)
    if names and ("config.yaml" in names or not all(n in _PREP_LEFTOVERS or ".tmp-" in n for n in names)):
        raise InputError(f"output_dir '{out}' already exists and is not empty",
                         hint="pass --resume to continue that run, or choose another output_dir")
    return [out / n for n in sorted(names)]


def _check_output_dir(cfg: TrainConfig, out: Path, resume: bool) -> None:
    if not resume:
        for target in _leftovers(out):
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
        return
    saved = out / "config.yaml"
    if not saved.exists():
        raise InputError(f"--resume: '{out}' holds no run (no config.yaml)", hint="start it without --resume")
    diffs = diff_fingerprints(fingerprint(_read_saved_config(saved)), fingerprint(cfg))
    if diffs:
        raise ConfigError(f"--resume: the config does not match the run in '{out}': " + "; ".join(diffs),
                          hint="only checkpoint, logging, launch and train.max_steps may change on resume")
    # No complete state yet (killed before or during the first state save): the resume starts at step 0,
    # over the same prepared data; the steps it re-runs overwrite their stale metrics and exports.


def _saved_report(out: Path) -> dict:
    try:
        report = json.loads((out / "data_report.json").read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"--resume: cannot read '{out / 'data_report.json'}' ({first_line(e)})",
                         hint="start the run over in a new output_dir") from None
    if not isinstance(report, dict):
        raise InputError(f"--resume: '{out / 'data_report.json'}' is not a JSON object",
                         hint="start the run over in a new output_dir")
    return report


def _digest(data) -> str:
    h = hashlib.sha256()
    for arr in (data.tokens, data.offsets, data.prompt_lens):
        h.update(memoryview(arr.tobytes()))
    return h.hexdigest()[:16]


def total_steps(cfg: TrainConfig, steps_per_epoch_: int) -> int:
    """The run's last step: epochs x steps per epoch, or train.max_steps when that comes first."""
    schedule = cfg.train.epochs * steps_per_epoch_
    return min(cfg.train.max_steps or schedule, schedule)


def _dropped(report: dict) -> str:
    why = [(report["dropped_too_long"], f"too long (data.max_length {report['max_length']} or the prompt/response limits)"),
           (report["dropped_prompt_too_long"], "prompt too long to truncate"),
           (report["empty_response"], "empty prompt or response")]
    parts = [f"{n} {reason}" for n, reason in why if n]
    return f"{report['rows'] - report['kept']} dropped (" + "; ".join(parts) + ")" if parts else "none dropped"


def describe_data(report: dict, cfg: TrainConfig, total: int) -> str:
    """One line: rows kept and dropped (and why), the batch remainder, and the steps that make up the run."""
    truncated = f", {report['truncated']} truncated" if report["truncated"] else ""
    line = (f"data: {report['kept']} of {report['rows']} rows kept, {_dropped(report)}{truncated}; "
            f"{report['tokens']} tokens; {report['steps_per_epoch']} steps/epoch of {cfg.train.global_batch_size} rows")
    if report["dropped_remainder_per_epoch"]:
        line += f" ({report['dropped_remainder_per_epoch']} rows per epoch left out: not a multiple of global_batch_size)"
    return line + f"; the run ends at step {total}"


def _check_schedule(cfg: TrainConfig, report: dict, total: int) -> None:
    late = sorted(s for s in cfg.checkpoint.steps if s > total)
    if late:
        raise InputError(
            f"checkpoint.steps: {late} beyond the run's last step {total} ({report['kept']} of {report['rows']} rows "
            f"kept, {_dropped(report)}; {report['steps_per_epoch']} steps/epoch of {cfg.train.global_batch_size} rows "
            f"x {cfg.train.epochs} epochs"
            + (f", train.max_steps {cfg.train.max_steps}" if cfg.train.max_steps else "") + ")",
            hint="drop those steps, or train on more rows or epochs; the last step is always checkpointed")


def _check_system_prompt(tokenizer, rows: list, report: dict, echo) -> None:
    from curate.generate.prompting import detect_injected_system

    injected = detect_injected_system(tokenizer)
    bare = sum(1 for msgs in rows if msgs[0]["role"] != "system")
    report["injected_system_prompt"] = injected if bare else None
    if injected and bare:
        echo(f"warning: the chat template injects a system prompt into the {bare} rows that have none "
             f"({injected[:80]!r}); they are trained with it. Use a tokenizer whose template adds none, or put the "
             "system message you want in the data")


def prepare_run(cfg: TrainConfig, resume: bool, echo=print) -> dict:
    """Everything before torchrun: checks, tokenization + length policy (counted), the run folder.
    Returns {report, total_steps, resumed_from, lineage}; {} on nodes other than node 0."""
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
        raise InputError(f"{cfg.data.path}: only {len(data)} samples survive the length policy ({_dropped(report)}), "
                         f"fewer than train.global_batch_size={G}", hint="lower train.global_batch_size or check data.max_length")
    _check_system_prompt(tokenizer, rows, report, echo)
    report["digest"] = _digest(data)
    report["steps_per_epoch"] = steps_per_epoch(len(data), G)
    report["dropped_remainder_per_epoch"] = len(data) - report["steps_per_epoch"] * G
    total = total_steps(cfg, report["steps_per_epoch"])
    _check_schedule(cfg, report, total)
    resumed_from = None
    if resume:
        if _saved_report(out).get("digest") != report["digest"]:
            raise ConfigError(f"--resume: the tokenized data differs from the run in '{out}' (dataset or tokenizer changed)")
        state = latest_state(out)
        resumed_from = state_step(state) if state is not None else 0
        if not (out / LINEAGE).exists():
            write_atomic(out / LINEAGE, json.dumps(lineage_for(cfg), indent=2) + "\n")
    else:
        tmp = out / "data.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        data.save(tmp)
        os.replace(tmp, out / "data")
        write_atomic(out / "data_report.json", json.dumps(report, indent=2))
        write_atomic(out / LINEAGE, json.dumps(lineage_for(cfg), indent=2) + "\n")
    # Written last: a folder with config.yaml holds a prepared run.
    write_atomic(out / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    lineage = json.loads((out / LINEAGE).read_text())
    return {"report": report, "total_steps": total, "resumed_from": resumed_from, "lineage": lineage}


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


@contextmanager
def _stop_on_signals(out: Path):
    """The one-rank case: SIGTERM/SIGHUP end this process (the rank) through its finally blocks, as one line."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise TrainingStopped(signum, out)

    old = {s: signal.signal(s, stop) for s in catchable_signals((signal.SIGTERM, signal.SIGHUP))}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def summary(out: Path, plan: dict) -> dict:
    """What `curate train --json` prints: the run, its steps, the checkpoints on disk, the data report."""
    state = latest_state(out)
    result = {"output_dir": str(out), "metrics": str(out / "metrics.jsonl"), "checkpoints": checkpoints(out),
              "state": str(state) if state else None}
    if plan:
        result.update(run_id=plan["lineage"]["run_id"], steps=plan["total_steps"], resumed_from=plan["resumed_from"],
                      data=plan["report"], lineage=plan["lineage"])
    return result


def describe_result(result: dict) -> str:
    cks = result["checkpoints"]
    steps = ", ".join(str(c["step"]) for c in cks) if len(cks) <= 12 else f"{cks[0]['step']}, {cks[1]['step']} ... {cks[-1]['step']}"
    head = f"done: {result['steps']} steps" if "steps" in result else "done"
    if result.get("resumed_from") is not None:
        head += f" (resumed from step {result['resumed_from']})"
    ck = f"{len(cks)} checkpoints (steps {steps}), last {cks[-1]['path']}" if cks else "no checkpoints on this node"
    return f"{head}; {ck}; metrics in {result['metrics']}"


def train_from_config(config_path: str | Path, overrides: list[str] | None = None, resume: bool = False,
                      echo=print, stdout=None) -> dict:
    """Validate + prepare under the run lock, train (in this process or under torchrun), and return the
    summary (see `summary`). `stdout`: where torchrun's output goes (the CLI's --json sends it to stderr)."""
    cfg = load_config(config_path, overrides)
    out = Path(cfg.output_dir).expanduser()
    _check_model(cfg)
    if not resume and cfg.launch.node_rank == 0:
        _leftovers(out)  # refuse a taken folder before putting a lock file into it
    lock = RunLock(out) if cfg.launch.node_rank == 0 else None
    if lock is not None:
        lock.acquire()
    try:
        try:
            plan = prepare_run(cfg, resume, echo)
        except BaseException:
            if lock is not None:
                lock.discard_if_unused()
            raise
        if plan:
            echo(describe_data(plan["report"], cfg, plan["total_steps"]))
            if resume:
                state = latest_state(out)
                echo(f"resuming from step {plan['resumed_from']} of {plan['total_steps']} ({state})" if state else
                     f"no complete state in '{out}' yet: starting from step 0 of {plan['total_steps']}")
        if _single_process(cfg):
            with _stop_on_signals(out):
                _run_here(out, resume)
        else:
            os.environ.update(cpus.per_child(torchrun_nproc() if cfg.launch.nproc_per_node == "auto"
                                              else cfg.launch.nproc_per_node))  # each rank its share of the CPUs
            rc = run_torchrun(torchrun_command(cfg, resume), lock, stdout)
            if rc != 0:
                raise CurateError(f"training exited with status {rc}",
                                  hint=f"see the log above; resume with --resume from {cfg.output_dir}")
    finally:
        if lock is not None:
            lock.release()
    return summary(out, plan)
