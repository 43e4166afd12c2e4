"""Where a run keeps things under output_dir, and what a checkpoint says about where it came from.

Torch-free, so the launcher's checks stay fast and the evaluator can read lineage without torch:
    config.yaml          the resolved config; written last when a run is prepared, so it marks a run
    data/, data_report.json, lineage.json, metrics.jsonl
    checkpoints/step-NNNNNN/   Hugging Face export + curate_checkpoint.json (written before the folder's
                               atomic rename, so a folder with it is complete)
    state/step-NNNNNN/         resumable state, counted once its COMPLETE marker exists
    .train.lock, .ranks.lock   held while a run is alive (curate/train/guard.py)

`checkpoint_info(folder)` returns a complete checkpoint's marker (step, run_id, config_hash, data_path,
mixture_fingerprint, recipe_hash, store_snapshot, base_model, fingerprint) or None; `model_fingerprint(folder)`
is the content hash of a model folder that evaluation identifies a model by; `run_lineage(output_dir)` returns
the run's lineage plus its complete checkpoints. Tested in tests/test_train_lineage.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

MARKER = "curate_checkpoint.json"
LINEAGE = "lineage.json"
LOCK_FILES = (".train.lock", ".ranks.lock")
_STEP_DIR = re.compile(r"step-(\d+)$")


def step_name(step: int) -> str:
    return f"step-{step:06d}"


def latest_state(output_dir: Path) -> Path | None:
    """The newest resumable state whose COMPLETE marker exists (a kill mid-save leaves the previous one)."""
    states = sorted(p for p in (Path(output_dir) / "state").glob("step-*")
                    if _STEP_DIR.match(p.name) and (p / "COMPLETE").exists())
    return states[-1] if states else None


def state_step(folder: Path) -> int:
    return int(_STEP_DIR.match(folder.name).group(1))


def is_local_path(s: str) -> bool:
    """A model reference that must exist on disk (vs a hub id like Qwen/Qwen3-1.7B-Base)."""
    return s.startswith(("/", ".", "~")) or Path(s).expanduser().exists() or s.count("/") > 1


def write_atomic(path: Path, text: str) -> None:
    """Write beside the target, flush to disk, rename over it: a reader (or a resume) sees old or new, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _short_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def find_manifest(data_path: str | Path) -> Path | None:
    """The manifest.json of the `curate mix` output that data.path points into (the folder itself, its
    dataset/ or data/ subfolder, or the Parquet file in data/), else None."""
    p = Path(data_path).expanduser()
    candidates = [p / "manifest.json"]
    if p.is_dir() and p.name in ("dataset", "data"):
        candidates.append(p.parent / "manifest.json")
    if p.is_file():
        candidates += [p.parent / "manifest.json", p.parent.parent / "manifest.json"]
    return next((c for c in candidates if c.is_file()), None)


def mixture_facts(data_path: str | Path) -> dict:
    """recipe_hash, store_snapshot (the store's snapshot id) and mixture_fingerprint (sha256 over the sorted
    sha256s of every file the manifest lists, first 16 hex) of a `curate mix` output; None each otherwise."""
    m = find_manifest(data_path)
    if m is None:
        return {"mixture_fingerprint": None, "recipe_hash": None, "store_snapshot": None}
    manifest = json.loads(m.read_text(encoding="utf-8"))
    shas = sorted(f["sha256"] for f in manifest.get("files", {}).values())
    return {"mixture_fingerprint": hashlib.sha256("".join(shas).encode()).hexdigest()[:16] if shas else None,
            "recipe_hash": manifest.get("recipe_hash"),
            "store_snapshot": (manifest.get("store") or {}).get("id")}


def lineage_for(cfg) -> dict:
    """A run's lineage from its config: run_id = hash(output_dir, config fingerprint); config_hash =
    hash(config fingerprint); the data path, the mixture it came from, and the base model."""
    from curate.train.config import fingerprint

    fp = fingerprint(cfg)
    out = str(Path(cfg.output_dir).expanduser().resolve())
    model = cfg.model.name_or_path
    if model != "debug" and is_local_path(model):
        model = str(Path(model).expanduser().resolve())
    return {"run_id": _short_hash({"output_dir": out, "config": fp}), "config_hash": _short_hash(fp),
            "data_path": str(Path(cfg.data.path).expanduser().resolve()), **mixture_facts(cfg.data.path),
            "base_model": model}


def weights_present(folder: Path) -> bool:
    """Every weight file an HF folder needs is there (all shards of a sharded index; .bin for older exports)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = set(json.loads(index.read_text())["weight_map"].values())
        return all((folder / s).is_file() for s in shards)
    return (folder / "model.safetensors").is_file() or (folder / "pytorch_model.bin").is_file()


_FINGERPRINTS: dict[tuple, str] = {}


def model_fingerprint(folder: str | Path) -> str:
    """A content hash of a model folder (16 hex): sha256 over the name and bytes of every file in it (weights,
    config, tokenizer, chat and generation settings) except curate's checkpoint marker, hidden files and
    partial downloads. Equal files give equal fingerprints wherever the folder lives; any retrained weight
    changes it. Reads every byte (about a second per GB, once per folder and process: the result is kept
    for an unchanged folder); `curate train` stores it in the checkpoint marker as `fingerprint`."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MARKER
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts)
                   and not p.name.endswith((".tmp", ".incomplete", ".lock")))
    stat_key = (str(folder.resolve()), tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    if stat_key in _FINGERPRINTS:
        return _FINGERPRINTS[stat_key]
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(folder).as_posix().encode() + b"\0")
        with open(p, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
        h.update(b"\0")
    _FINGERPRINTS[stat_key] = h.hexdigest()[:16]
    return _FINGERPRINTS[stat_key]


def checkpoint_info(folder: str | Path) -> dict | None:
    """The marker of a complete HF checkpoint (marker + config.json + weights), with its path; else None."""
    folder = Path(folder)
    marker = folder / MARKER
    try:
        if not (marker.is_file() and (folder / "config.json").is_file() and weights_present(folder)):
            return None
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError):  # a damaged index or marker: not a usable checkpoint
        return None
    return {**info, "path": str(folder)}


def checkpoints(output_dir: str | Path) -> list[dict]:
    """Every complete checkpoint of a run, by step."""
    found = (checkpoint_info(p) for p in (Path(output_dir) / "checkpoints").glob("step-*") if _STEP_DIR.match(p.name))
    return sorted((c for c in found if c is not None), key=lambda c: c["step"])


def run_lineage(output_dir: str | Path) -> dict:
    """The run's lineage (lineage.json, written when the run was prepared) and its complete checkpoints.
    Raises InputError when output_dir holds no run."""
    from curate.errors import InputError

    out = Path(output_dir).expanduser()
    saved = out / LINEAGE
    if saved.is_file():
        lineage = json.loads(saved.read_text(encoding="utf-8"))
    elif (out / "config.yaml").is_file():  # a run prepared before lineage.json existed
        from curate.train.config import load_config

        lineage = lineage_for(load_config(out / "config.yaml"))
    else:
        raise InputError(f"'{out}' holds no training run (no config.yaml)")
    return {**lineage, "output_dir": str(out), "checkpoints": checkpoints(out)}
