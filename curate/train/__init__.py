"""Bundled FSDP2 SFT runner: `curate train CONFIG.yaml`. Reads a `messages` dataset from disk (never the store).

config.py (validated YAML), data.py (tokenize, mask, length policy, packing), model.py (meta init,
apply_ac, apply_fsdp, loss), loop.py (per-rank loop), checkpoint.py (HF exports + DCP state),
metrics.py (JSONL + progress), launch.py (checks, then torchrun). See docs/training.md.
"""
from curate.train.config import TrainConfig, load_config

__all__ = ["TrainConfig", "load_config", "train_from_config"]


def train_from_config(*args, **kwargs):
    """Lazy wrapper so `import curate.train` stays light (torch is imported only when training)."""
    from curate.train.launch import train_from_config as run

    return run(*args, **kwargs)
