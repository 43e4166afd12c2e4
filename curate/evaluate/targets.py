"""What `curate eval TARGET` evaluates: checkpoints of a training run, one checkpoint, a hub model or an endpoint.

- A training run directory (`curate train`'s output_dir): every complete `checkpoints/step-NNNNNN` folder,
  in step order, plus `--base MODEL` as step 0. A folder still being written (`*.tmp`, or missing weights) is
  skipped and reported, never half-read.
- One checkpoint folder (config.json + weights): its step comes from the folder name or its
  `curate_checkpoint.json`; a folder under `RUN/checkpoints/` belongs to run RUN.
- A hub id (`Qwen/Qwen3-4B-Base`): loaded by the backend (network or the local HF cache); `--revision` (a
  branch, tag or commit) pins what is loaded.
- An http(s) URL: an OpenAI-compatible server; `--model` names the served model, `--revision` only labels it
  (the server decides what it serves).

Each target carries its lineage (training run id, config hash, mixture fingerprint, recipe hash, store
snapshot) from the checkpoint's `curate_checkpoint.json`, else from the run's config.yaml and the mixture's
manifest.json (curate.train.layout reads both, without torch). `identity` is the model name stored on the eval
samples, and so part of every eval sample id: for a local folder it is its name and the content hash of its files
(`RUN/step-NNNNNN@FINGERPRINT` for a checkpoint of run folder RUN, `NAME@FINGERPRINT` for a base model folder;
`curate.train.layout.model_fingerprint`, taken from the checkpoint marker when the trainer recorded it), never its
absolute path: a study moved or rerun in another folder plans the same ids and finds its samples stored, and the
base model that every cell of a study scores as step 0 is generated once. A hub id or endpoint is its own identity,
`ID@REVISION` with a revision (also its checkpoint and default run name, so two revisions never share rows). A
local folder with a revision is refused: its files are its identity, and a loader ignores a revision for a folder.
Test: tests/test_evaluate.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from curate.errors import CurateError, InputError
from curate.store.evals import LINEAGE_COLUMNS
from curate.train.layout import checkpoint_info, is_local_path, model_fingerprint, run_lineage, weights_present

STEP_DIR = re.compile(r"^step-(\d+)$")
LINEAGE_KEYS = LINEAGE_COLUMNS


@dataclass(frozen=True)
class Target:
    run: str  # the run/condition name shown in `evals`
    checkpoint: str  # folder, hub id or endpoint
    step: int | None
    model_ref: str  # what the backend loads (path or hub id or served model name)
    identity: str  # samples.model for the eval traces
    endpoint: str | None = None
    lineage: dict = field(default_factory=dict)
    revision: str | None = None  # the hub revision loaded (or an endpoint's label); None for a local folder


def looks_like_path(ref: str) -> bool:
    """A reference meant as a local folder, not a hub id: absolute, relative (./, ~), with more than one `/`,
    a trailing `/` or a backslash, or whose first part is a folder here (`runs/nope` while `runs/` exists)."""
    first = Path(ref.split("/", 1)[0]).expanduser()
    return (is_local_path(ref) or ref.endswith("/") or "\\" in ref
            or ("/" in ref and first.is_dir()))


def has_weights(folder: Path) -> bool:
    try:
        return weights_present(folder)
    except (OSError, ValueError, KeyError):  # a damaged shard index: not a usable checkpoint
        return False


def _run_lineage(run_dir: Path | None) -> dict:
    """The training run's lineage (run id, config hash, mixture, recipe, store snapshot); {} when not a curate run."""
    if run_dir is None:
        return {}
    try:
        lineage = run_lineage(run_dir)
    except (CurateError, OSError, ValueError):
        return {}
    return {k: lineage.get(k) for k in LINEAGE_KEYS if lineage.get(k) is not None}


def _checkpoint_target(folder: Path, run: str, run_fallback: dict) -> Target:
    """One checkpoint: step and lineage from its marker (read once), else its folder name and the run's lineage."""
    info = checkpoint_info(folder) or {}
    m = STEP_DIR.match(folder.name)
    step = info["step"] if isinstance(info.get("step"), int) else (int(m.group(1)) if m else None)
    lineage = {k: info.get(k) for k in LINEAGE_KEYS if info.get(k) is not None} if info else run_fallback
    fingerprint = info.get("fingerprint") or model_fingerprint(folder)
    parent = folder.parent.parent.name if folder.parent.name == "checkpoints" else None
    identity = f"{parent + '/' if parent else ''}{folder.name}@{fingerprint}"
    return Target(run=run, checkpoint=str(folder), step=step, model_ref=str(folder), identity=identity, lineage=lineage)


def run_checkpoints(run_dir: Path) -> tuple[list[Path], list[str]]:
    """Complete checkpoint folders of a run, and notes on the ones skipped."""
    found, notes = [], []
    for p in sorted((run_dir / "checkpoints").iterdir()) if (run_dir / "checkpoints").is_dir() else []:
        if not p.is_dir():
            continue
        if not STEP_DIR.match(p.name):
            notes.append(f"{p}: being written or not a checkpoint folder; skipped")
            continue
        if not (p / "config.json").exists() or not has_weights(p):
            notes.append(f"{p}: no config.json or weights (still being written?); skipped")
            continue
        found.append(p)
    return found, notes


def _pinned(ref: str, revision: str | None) -> str:
    return f"{ref}@{revision}" if revision else ref


def resolve_targets(target: str, *, base: str | None = None, run: str | None = None, model: str | None = None,
                    steps: list[int] | None = None, revision: str | None = None) -> tuple[list[Target], list[str]]:
    """The checkpoints to evaluate for TARGET, and notes on what was skipped. Raises InputError naming the problem."""
    notes: list[str] = []
    if revision is not None and not revision.strip():
        raise InputError("--revision is empty", hint="give a branch, tag or commit of the hub model")
    if target.startswith(("http://", "https://")):
        if not model:
            raise InputError(f"{target}: an endpoint needs --model (the served model name)")
        ident = _pinned(model, revision)
        return [Target(run=run or ident, checkpoint=target, step=None, model_ref=model, identity=ident, endpoint=target,
                       revision=revision)], notes
    p = Path(target).expanduser()
    if revision is not None and p.is_dir():
        raise InputError(f"--revision {revision}: {target} is a local folder, identified by its files, not a revision",
                         hint="--revision pins a hub-id TARGET; for a pinned base model, download that revision to a "
                              "folder and pass it as --base")
    out: list[Target] = []
    if p.is_dir() and (p / "checkpoints").is_dir():
        name = run or p.resolve().name
        folders, notes = run_checkpoints(p)
        lineage = _run_lineage(p)
        out = sorted((_checkpoint_target(f, name, lineage) for f in folders), key=lambda t: t.step or 0)
        if steps is not None:
            missing = sorted(set(steps) - {t.step for t in out} - {0})
            if missing:
                raise InputError(f"{p}: no complete checkpoint for step(s) {', '.join(map(str, missing))}",
                                 hint=f"available: {', '.join(str(t.step) for t in out) or 'none'}")
            out = [t for t in out if t.step in steps]
        if not out and not base:
            raise InputError(f"{p}: no complete checkpoint in {p / 'checkpoints'}" + (f" ({notes[0]})" if notes else ""))
        if base:
            out.insert(0, _base_target(base, name, lineage))
        return out, notes
    if p.is_dir():
        if not (p / "config.json").exists():
            raise InputError(f"{p}: neither a checkpoint (no config.json) nor a training run (no checkpoints/)")
        if not has_weights(p):
            raise InputError(f"{p}: no model weights (*.safetensors or *.bin); is the checkpoint still being written?")
        run_dir = p.parent.parent if p.parent.name == "checkpoints" else None
        name = run or (run_dir.resolve().name if run_dir else p.resolve().name)
        lineage = _run_lineage(run_dir)
        out = [_checkpoint_target(p, name, lineage)]
        if base:
            out.insert(0, _base_target(base, name, lineage))
        return out, notes
    if looks_like_path(target):
        raise InputError(f"{target}: no such checkpoint or run directory")
    ident = _pinned(target, revision)
    out = [Target(run=run or ident, checkpoint=ident, step=None, model_ref=target, identity=ident, revision=revision)]
    return out, notes


def _base_target(base: str, run: str, lineage: dict) -> Target:
    bp = Path(base).expanduser()
    if looks_like_path(base) and not bp.exists():
        raise InputError(f"--base {base}: no such model folder")
    ident = f"{bp.resolve().name}@{model_fingerprint(bp)}" if bp.is_dir() else base
    keep = {"run_id": lineage["run_id"]} if lineage.get("run_id") else {}  # the base model: which curve, not what it was trained on
    return Target(run=run, checkpoint=base, step=0, model_ref=base, identity=ident, lineage=keep)
