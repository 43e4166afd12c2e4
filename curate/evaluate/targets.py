"""What `curate eval TARGET` evaluates: checkpoints of a training run, one checkpoint, a hub model or an endpoint.

- A training run directory (`curate train`'s output_dir): every complete `checkpoints/step-NNNNNN` folder,
  in step order, plus `--base MODEL` as step 0. A folder still being written (`*.tmp`, or missing weights) is
  skipped and reported, never half-read.
- One checkpoint folder (config.json + weights): its step comes from the folder name or its
  `curate_checkpoint.json`; a folder under `RUN/checkpoints/` belongs to run RUN.
- A hub id (`Qwen/Qwen3-4B-Base`): loaded by the backend (network or the local HF cache).
- An http(s) URL: an OpenAI-compatible server; `--model` names the served model.

Each target carries its lineage (training run id, config hash, mixture fingerprint, recipe hash, store
snapshot) from the checkpoint's `curate_checkpoint.json`, else from the run's config.yaml and the mixture's
manifest.json. `identity` is the model name stored on the eval samples: `RUN_ID/step-NNNNNN` for curate
checkpoints, so moving a run directory does not re-evaluate it.
Test: tests/test_evaluate.py.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from curate.errors import InputError
from curate.records import content_hash

STEP_DIR = re.compile(r"^step-(\d+)$")
MARKER = "curate_checkpoint.json"
LINEAGE_KEYS = ("run_id", "config_hash", "mixture_fingerprint", "recipe_hash", "store_snapshot")


@dataclass(frozen=True)
class Target:
    run: str  # the run/condition name shown in `evals`
    checkpoint: str  # folder, hub id or endpoint
    step: int | None
    model_ref: str  # what the backend loads (path or hub id or served model name)
    identity: str  # samples.model for the eval traces
    endpoint: str | None = None
    lineage: dict = field(default_factory=dict)


def has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin")) or (folder / "model.safetensors.index.json").exists()


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def mixture_lineage(data_path: str | Path | None) -> dict:
    """recipe hash, store snapshot and a fingerprint of the data files, from a `curate mix` output's manifest."""
    if not data_path:
        return {}
    p = Path(data_path)
    manifest = _read_json(p / "manifest.json") or _read_json(p.parent / "manifest.json")
    if not manifest:
        return {}
    files = manifest.get("files") or {}
    shas = sorted(v.get("sha256", "") for v in files.values() if isinstance(v, dict))
    return {"recipe_hash": manifest.get("recipe_hash"), "store_snapshot": (manifest.get("store") or {}).get("id"),
            "mixture_fingerprint": hashlib.sha256("".join(shas).encode()).hexdigest()[:16] if shas else None}


def run_lineage(run_dir: Path) -> dict:
    """Lineage of a training run from its config.yaml (and the mixture it names)."""
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    if not isinstance(cfg, dict):
        return {}
    data = cfg.get("data") or {}
    # The parts that change numerics or data order, as the trainer's resume check defines them.
    fp = {"model": cfg.get("model"), "data": data,
          "train": {k: v for k, v in (cfg.get("train") or {}).items() if k != "max_steps"},
          "parallel": {"mixed_precision": (cfg.get("parallel") or {}).get("mixed_precision")}}
    config_hash = content_hash("train-config", fp)[:16]
    out = {"run_id": config_hash, "config_hash": config_hash, "base_model": (cfg.get("model") or {}).get("name_or_path")}
    out.update(mixture_lineage(data.get("path")))
    return out


def checkpoint_lineage(folder: Path, run_dir: Path | None) -> dict:
    marker = _read_json(folder / MARKER)
    if marker:
        return {k: marker.get(k) for k in LINEAGE_KEYS if marker.get(k) is not None}
    return run_lineage(run_dir) if run_dir else {}


def _step_of(folder: Path) -> int | None:
    marker = _read_json(folder / MARKER)
    if marker and isinstance(marker.get("step"), int):
        return marker["step"]
    m = STEP_DIR.match(folder.name)
    return int(m.group(1)) if m else None


def _checkpoint_target(folder: Path, run: str, run_dir: Path | None) -> Target:
    step = _step_of(folder)
    lineage = checkpoint_lineage(folder, run_dir)
    run_id = lineage.get("run_id")
    identity = f"{run_id}/step-{step:06d}" if run_id and step is not None else str(folder.resolve())
    return Target(run=run, checkpoint=str(folder), step=step, model_ref=str(folder), identity=identity, lineage=lineage)


def run_checkpoints(run_dir: Path) -> tuple[list[Path], list[str]]:
    """Complete checkpoint folders of a run in step order, and notes on the ones skipped."""
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
    found.sort(key=lambda p: _step_of(p) or 0)
    return found, notes


def resolve_targets(target: str, *, base: str | None = None, run: str | None = None, model: str | None = None,
                    steps: list[int] | None = None) -> tuple[list[Target], list[str]]:
    """The checkpoints to evaluate for TARGET, and notes on what was skipped. Raises InputError naming the problem."""
    notes: list[str] = []
    if target.startswith(("http://", "https://")):
        if not model:
            raise InputError(f"{target}: an endpoint needs --model (the served model name)")
        return [Target(run=run or model, checkpoint=target, step=None, model_ref=model, identity=model, endpoint=target)], notes
    p = Path(target).expanduser()
    out: list[Target] = []
    if p.is_dir() and (p / "checkpoints").is_dir():
        name = run or p.resolve().name
        folders, notes = run_checkpoints(p)
        out = [_checkpoint_target(f, name, p) for f in folders]
        if steps is not None:
            missing = sorted(set(steps) - {t.step for t in out} - {0})
            if missing:
                raise InputError(f"{p}: no complete checkpoint for step(s) {', '.join(map(str, missing))}",
                                 hint=f"available: {', '.join(str(t.step) for t in out) or 'none'}")
            out = [t for t in out if t.step in steps]
        if not out and not base:
            raise InputError(f"{p}: no complete checkpoint in {p / 'checkpoints'}" + (f" ({notes[0]})" if notes else ""))
        if base:
            lineage = run_lineage(p)
            out.insert(0, _base_target(base, name, lineage))
        return out, notes
    if p.is_dir():
        if not (p / "config.json").exists():
            raise InputError(f"{p}: neither a checkpoint (no config.json) nor a training run (no checkpoints/)")
        if not has_weights(p):
            raise InputError(f"{p}: no model weights (*.safetensors or *.bin); is the checkpoint still being written?")
        run_dir = p.parent.parent if p.parent.name == "checkpoints" else None
        name = run or (run_dir.resolve().name if run_dir else p.resolve().name)
        out = [_checkpoint_target(p, name, run_dir)]
        if base:
            out.insert(0, _base_target(base, name, run_lineage(run_dir) if run_dir else {}))
        return out, notes
    if target.startswith(("/", ".", "~")) or p.exists():
        raise InputError(f"{target}: no such checkpoint or run directory")
    out = [Target(run=run or target, checkpoint=target, step=None, model_ref=target, identity=target)]
    return out, notes


def _base_target(base: str, run: str, lineage: dict) -> Target:
    bp = Path(base).expanduser()
    if base.startswith(("/", ".", "~")) and not bp.exists():
        raise InputError(f"--base {base}: no such model folder")
    ident = str(bp.resolve()) if bp.exists() else base
    keep = {k: v for k, v in lineage.items() if k in ("run_id", "config_hash", "mixture_fingerprint", "recipe_hash", "store_snapshot")}
    return Target(run=run, checkpoint=base, step=0, model_ref=base, identity=ident, lineage=keep)
