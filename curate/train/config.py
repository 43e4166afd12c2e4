"""Training config: one pydantic model per section, unknown keys rejected, errors naming the field path.

Load with `load_config(path, overrides=["train.lr=1e-5", ...])`; `path` may also name a shipped config
(`study`, `debug`: curate/train/configs/, installed as package data). `--set` values are parsed as YAML, so
`checkpoint.steps=[10,20]` and `data.packing=true` do what they look like. `fingerprint(cfg)` is the part
of the config a resumable state must agree with (model, data, optimisation); logging, launch and the
checkpoint schedule may change between a run and its resume.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import Field, ValidationError, model_validator

from curate.config import StrictModel, format_errors, parse_sets, resolve_shipped, set_dotted, shipped_dir, shipped_names
from curate.errors import ConfigError
from curate.yamlfile import load_yaml

CONFIG_DIR = shipped_dir("configs")


class DebugModel(StrictModel):
    """The tiny random-init model used when `model.name_or_path: debug` (CPU tests, smoke runs)."""

    arch: Literal["qwen3", "qwen2", "llama"] = "qwen3"
    hidden_size: int = Field(64, ge=8)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    num_kv_heads: int = Field(2, ge=1)
    head_dim: Optional[int] = None
    intermediate_size: int = Field(128, ge=8)
    tie_word_embeddings: bool = True
    max_position_embeddings: int = 32768
    rope_theta: float = 1_000_000.0
    vocab_size: Optional[int] = Field(None, ge=8, description="default: the tokenizer's size")


class ModelCfg(StrictModel):
    name_or_path: str = Field(..., description="'debug', a local directory, or a Hugging Face hub id")
    tokenizer: Optional[str] = Field(None, description="defaults to name_or_path; required for 'debug'")
    attn_implementation: Literal["auto", "sdpa_varlen", "sdpa", "eager", "flash_attention_2", "flash_attention_3"] = "auto"
    debug: DebugModel = DebugModel()
    trust_remote_code: bool = False

    @model_validator(mode="after")
    def _debug_needs_tokenizer(self):
        if self.name_or_path == "debug" and not self.tokenizer:
            raise ValueError("model.tokenizer is required when model.name_or_path is 'debug'")
        return self


class DataCfg(StrictModel):
    path: str = Field(..., description="load_from_disk directory, .parquet/.jsonl/.json file, or a folder of them")
    split: str = "train"
    messages_field: str = "messages"
    max_length: int = Field(20_000, ge=8)
    max_prompt_length: Optional[int] = Field(3_072, ge=1)
    max_response_length: Optional[int] = Field(16_384, ge=1)
    truncation: Literal["drop", "truncate", "error"] = "drop"
    response_end: Literal["template", "eos"] = "template"
    shuffle: bool = True
    packing: bool = False
    micro_batch_size: int = Field(1, ge=1, description="sequences per forward when packing is off")
    micro_batch_tokens: Optional[int] = Field(None, ge=8, description="tokens per packed forward; default max_length")


class TrainCfg(StrictModel):
    global_batch_size: int = Field(256, ge=1, description="sequences per optimizer step, all ranks together")
    epochs: int = Field(8, ge=1)
    max_steps: Optional[int] = Field(None, ge=1, description="stop early (the schedule still spans epochs unless set)")
    seed: int = 42
    lr: float = Field(5e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    grad_clip: Optional[float] = Field(1.0, gt=0)


class ParallelCfg(StrictModel):
    activation_checkpointing: Literal["full", "selective", "op", "none"] = "full"
    ac_every: int = Field(2, ge=1, description="'selective': checkpoint every k-th decoder layer")
    mixed_precision: Literal["auto", "bf16", "fp32"] = "auto"
    compile: bool = False
    loss_chunk_tokens: int = Field(0, ge=0, description="0: plain logits; N: chunked linear cross-entropy")
    reshard_after_forward: bool = True


class CheckpointCfg(StrictModel):
    """HF exports at `steps`, every `every` steps, and always at the last step."""

    steps: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list, description="explicit steps to export in HF format")
    every: Optional[int] = Field(None, ge=1, description="also export every k steps")
    state_every: Optional[int] = Field(None, ge=1, description="resumable state every k steps (default: every export)")
    keep_states: int = Field(1, ge=1, description="resumable states kept on disk (newest)")
    save_dtype: Literal["auto", "bf16", "fp32"] = "auto"


class LoggingCfg(StrictModel):
    progress: bool = True
    tensorboard: bool = False
    wandb_project: Optional[str] = None


class LaunchCfg(StrictModel):
    nproc_per_node: int | Literal["auto"] = "auto"
    nnodes: int = Field(1, ge=1)
    node_rank: int = Field(0, ge=0)
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    rdzv_endpoint: Optional[str] = None
    backend: Literal["auto", "nccl", "gloo"] = "auto"


class TrainConfig(StrictModel):
    model: ModelCfg
    data: DataCfg
    output_dir: str
    train: TrainCfg = TrainCfg()
    parallel: ParallelCfg = ParallelCfg()
    checkpoint: CheckpointCfg = CheckpointCfg()
    logging: LoggingCfg = LoggingCfg()
    launch: LaunchCfg = LaunchCfg()

    @model_validator(mode="after")
    def _lengths(self):
        d = self.data
        if d.micro_batch_tokens is not None and d.micro_batch_tokens < d.max_length:
            raise ValueError("data.micro_batch_tokens must be >= data.max_length (a sample never spans two forwards)")
        if self.launch.node_rank >= self.launch.nnodes:
            raise ValueError("launch.node_rank must be < launch.nnodes")
        return self


def config_from_dict(raw: dict, where: str = "config") -> TrainConfig:
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_errors(e, where, what="training config"), hint="see docs/training.md for every field") from None


def shipped_configs() -> list[str]:
    return shipped_names("configs")


def resolve_config_path(path: str | Path) -> Path:
    """A YAML path, or the name of a shipped config (`study`, `debug`) when no such file exists."""
    return resolve_shipped("configs", path, what="training config")


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config (or a shipped one by name), apply `key=value` overrides (values parsed as YAML), validate."""
    p = resolve_config_path(path)
    raw = load_yaml(p, what="training config")[0] or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: the top level must be a mapping")
    for key, value in parse_sets(overrides).items():
        set_dotted(raw, key, value, where="--set", what="training config", create=True)
    return config_from_dict(raw, str(p))


def fingerprint(cfg: TrainConfig) -> dict:
    """Fields a resumable state must match: anything that changes numerics or data order."""
    d = cfg.model_dump(mode="json")
    par = d["parallel"]
    return {
        "model": d["model"],
        "data": d["data"],
        "train": {k: v for k, v in d["train"].items() if k != "max_steps"},
        "parallel": {"mixed_precision": par["mixed_precision"]},
    }


def diff_fingerprints(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff_fingerprints(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out
