"""Where a run keeps things under output_dir (torch-free, so the launcher's checks stay fast):
config.yaml, data/, data_report.json, metrics.jsonl, checkpoints/step-NNNNNN/ (HF), state/step-NNNNNN/ (resume)."""
from __future__ import annotations

from pathlib import Path


def step_name(step: int) -> str:
    return f"step-{step:06d}"


def latest_state(output_dir: Path) -> Path | None:
    """The newest resumable state whose COMPLETE marker exists (a kill mid-save leaves the previous one)."""
    states = sorted(p for p in (Path(output_dir) / "state").glob("step-*") if (p / "COMPLETE").exists())
    return states[-1] if states else None


def is_local_path(s: str) -> bool:
    """A model reference that must exist on disk (vs a hub id like Qwen/Qwen3-1.7B-Base)."""
    return s.startswith(("/", ".", "~")) or Path(s).expanduser().exists() or s.count("/") > 1
