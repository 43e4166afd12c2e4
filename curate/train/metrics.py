"""Per-step metrics: one JSON line per step in `output_dir/metrics.jsonl` (rank 0), a rich progress bar, and
TensorBoard / W&B only when installed and asked for. MFU counts 6 * params * tokens for the dense part plus
12 * layers * hidden * sum(len^2) for attention (torchtitan's estimate, no causal halving)."""
from __future__ import annotations

import json
import os
import resource
from pathlib import Path

import torch

from curate.train.layout import write_atomic


def _step(line: str) -> float:
    """A line's step; a line cut by a kill mid-write counts as past any resume point (dropped)."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return float("inf")


# Dense bf16 peak per device (no sparsity). Override with CURATE_PEAK_TFLOPS.
_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "H800": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0,
                "A6000": 155.0, "4090": 165.0, "B200": 2250.0, "GH200": 989.0}


def peak_flops() -> float | None:
    if "CURATE_PEAK_TFLOPS" in os.environ:
        return float(os.environ["CURATE_PEAK_TFLOPS"]) * 1e12
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    for key, tf in _PEAK_TFLOPS.items():
        if key in name:
            return tf * 1e12
    return None


def train_flops(n_params_dense: int, n_layers: int, hidden: int, tokens: int, sum_len_sq: int) -> float:
    return 6.0 * n_params_dense * tokens + 12.0 * n_layers * hidden * sum_len_sq


def memory_gib() -> dict:
    if torch.cuda.is_available():
        return {"mem_peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
                "mem_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 3)}
    return {"mem_rss_peak_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)}


class MetricsLog:
    """Rank-0 sink. On resume, lines past the resumed step are dropped so the file reads as one clean run."""

    def __init__(self, output_dir: Path, total_steps: int, start_step: int, progress: bool, tensorboard: bool,
                 wandb_project: str | None, config: dict):
        self.path = output_dir / "metrics.jsonl"
        if self.path.exists():  # rewritten atomically: a kill here leaves the old file, never a cut one
            keep = [ln for ln in self.path.read_text().splitlines() if ln.strip() and _step(ln) <= start_step]
            write_atomic(self.path, "".join(ln + "\n" for ln in keep))
        self.fh = self.path.open("a")
        self.progress = None
        if progress:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                     TextColumn("{task.fields[info]}"), transient=False, console=Console(stderr=True))
            self.task = self.progress.add_task("train", total=total_steps, completed=start_step, info="")
            self.progress.start()
        self.tb = self.wandb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(output_dir / "tensorboard"))
            except ImportError:
                pass
        if wandb_project:
            try:
                import wandb

                self.wandb = wandb.init(project=wandb_project, config=config, dir=str(output_dir))
            except ImportError:
                pass

    def log(self, row: dict) -> None:
        self.fh.write(json.dumps(row) + "\n")
        self.fh.flush()
        if self.progress is not None:
            info = f"loss {row['loss']:.4f}  lr {row['lr']:.2e}  {row['tokens_per_s']:.0f} tok/s"
            self.progress.update(self.task, completed=row["step"], info=info)
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != "step":
                    self.tb.add_scalar(k, v, row["step"])
        if self.wandb is not None:
            self.wandb.log(row, step=row["step"])

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.fh.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
