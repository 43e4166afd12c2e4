"""CPU training throughput: curate's FSDP2 runner (packed, and unpacked) vs TRL's SFTTrainer on the same tiny
model, data, order and global batch, side by side in one process, several repetitions, median + ratio.

Tokens/s counts real (non-pad) tokens of the steps after the first (warm-up excluded), for both sides.
Run:  /work/venv/bin/python benchmarks/train_cpu_vs_trl.py            (default: ~2-4 minutes on 2 cores)
      /work/venv/bin/python benchmarks/train_cpu_vs_trl.py --rows 512 --steps 16 --hidden 512 --reps 5
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "train"))

import torch  # noqa: E402

import tiny  # noqa: E402


def ours(tmp: Path, name: str, args, packing: bool) -> float:
    from curate.train import train_from_config

    cfg = tiny.write_config(
        tmp / f"{name}.yaml", tmp / "tok", tmp / "data.jsonl", tmp / name,
        model={"name_or_path": str(tmp / "init"), "attn_implementation": "auto"},  # CPU: sdpa_varlen
        data={"packing": packing, "micro_batch_size": args.micro, "micro_batch_tokens": args.micro * args.max_length,
              "shuffle": False, "max_length": args.max_length, "max_prompt_length": None, "max_response_length": None},
        train={"global_batch_size": args.batch, "epochs": 1, "max_steps": args.steps, "lr": 1e-4, "warmup_ratio": 0.0},
        parallel={"activation_checkpointing": "none", "mixed_precision": "fp32"},
        checkpoint={"every": None, "steps": []},
    )
    train_from_config(cfg, echo=lambda *a: None)
    rows = [json.loads(x) for x in (tmp / name / "metrics.jsonl").read_text().splitlines()][1:]
    return sum(r["tokens"] for r in rows) / sum(r["step_time_s"] for r in rows)


def trl(tmp: Path, name: str, args, rows, lengths, packing: bool) -> float:
    import datasets
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    class Timer(TrainerCallback):
        def __init__(self):
            self.ends = []

        def on_step_begin(self, a, state, control, **kw):
            if not self.ends:
                self.ends.append(time.perf_counter())

        def on_step_end(self, a, state, control, **kw):
            self.ends.append(time.perf_counter())

    ds = datasets.Dataset.from_list([{"prompt": r[:-1], "completion": r[-1:]} for r in rows])
    # with packing a TRL "row" is a pack of max_length tokens: take about as many tokens per step as ours
    packs = max(1, round(args.batch * float(lengths.mean()) / args.max_length))
    micro, accum = (1, packs) if packing else (args.micro, args.batch // args.micro)
    targs = SFTConfig(
        output_dir=str(tmp / name), per_device_train_batch_size=micro, gradient_accumulation_steps=accum,
        max_steps=args.steps, learning_rate=1e-4, lr_scheduler_type="constant", logging_steps=1, save_strategy="no",
        report_to=[], use_cpu=True, bf16=False, max_length=args.max_length, completion_only_loss=True,
        train_sampling_strategy="sequential", dataloader_num_workers=0, packing=packing, disable_tqdm=True,
        **({"padding_free": True} if packing else {}),
    )
    model = AutoModelForCausalLM.from_pretrained(tmp / "init", dtype=torch.float32, attn_implementation="sdpa")
    timer = Timer()
    trainer = SFTTrainer(model=model, args=targs, train_dataset=ds, processing_class=tiny_tok(tmp), callbacks=[timer])
    trainer.train()
    # TRL logs cumulative non-pad tokens per step (with packing a "row" is a pack, so rows can't be counted)
    seen = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h and "loss" in h]
    if not packing:  # cross-check: step k covers rows [k*batch, (k+1)*batch) in order (sequential sampler)
        assert seen[-1] - seen[0] == sum(int(lengths[k * args.batch : (k + 1) * args.batch].sum()) for k in range(1, args.steps))
    return (seen[-1] - seen[0]) / (timer.ends[-1] - timer.ends[1])  # step 0 left out (warm-up)


_TOK = {}


def tiny_tok(tmp: Path):
    from transformers import AutoTokenizer

    return _TOK.setdefault(tmp, AutoTokenizer.from_pretrained(tmp / "tok"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=160)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32, help="global batch (sequences)")
    ap.add_argument("--micro", type=int, default=8, help="sequences per forward (unpacked) / packing budget multiple")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--trl-packing", action="store_true", help="also time TRL with packing (padding-free BFD)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM

    from curate.train.config import DataCfg, load_config
    from curate.train.data import prepare
    from curate.train.model import debug_config

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        tok = tiny.make_tokenizer(tmp / "tok")
        # long-tailed lengths, like reasoning traces: most short, a few long
        rows = tiny.rows(args.rows, seed=1, min_words=10, max_words=60)
        import random

        rng = random.Random(2)
        for r in rows:
            if rng.random() < 0.2:
                r[-1]["content"] = r[-1]["content"] + (" wait let me verify" * rng.randint(20, 120))
        tiny.write_jsonl(tmp / "data.jsonl", rows)
        cfg = tiny.write_config(tmp / "base.yaml", tmp / "tok", tmp / "data.jsonl", tmp / "x")
        cfg = load_config(cfg, [f"model.debug.hidden_size={args.hidden}", f"model.debug.num_layers={args.layers}",
                                f"model.debug.intermediate_size={args.hidden * 3}", "model.debug.num_heads=8",
                                "model.debug.num_kv_heads=4"])
        torch.manual_seed(0)
        init = AutoModelForCausalLM.from_config(debug_config(cfg, len(tok), tok), dtype=torch.float32)
        init.save_pretrained(tmp / "init")
        tok.save_pretrained(tmp / "init")
        data, report = prepare(tok, rows, DataCfg(path="x", max_length=args.max_length, max_prompt_length=None,
                                                   max_response_length=None), "bench")
        assert report["kept"] == len(rows), report
        lengths = data.lengths
        steps_tokens = int(lengths[: args.batch * args.steps].sum())
        print(f"model: {sum(p.numel() for p in init.parameters()) / 1e6:.1f}M params, hidden {args.hidden}, {args.layers} layers; "
              f"{args.rows} rows, lengths {lengths.min()}-{lengths.max()} (mean {lengths.mean():.0f}); "
              f"{args.steps} steps x {args.batch} seqs ({steps_tokens} tokens); threads {args.threads}")
        results: dict[str, list[float]] = {"curate packed": [], "curate unpacked": [], "trl": []}
        if args.trl_packing:
            results["trl packed"] = []
        for rep in range(args.reps):
            results["curate packed"].append(ours(tmp, f"p{rep}", args, True))
            results["trl"].append(trl(tmp, f"t{rep}", args, rows, lengths, False))
            results["curate unpacked"].append(ours(tmp, f"u{rep}", args, False))
            if args.trl_packing:
                results["trl packed"].append(trl(tmp, f"tp{rep}", args, rows, lengths, True))
            print(f"rep {rep}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in results.items()), flush=True)
        base = statistics.median(results["trl"])
        print(f"\n{'runner':<18}{'median tok/s':>14}{'vs trl':>9}   reps")
        for k, v in results.items():
            med = statistics.median(v)
            print(f"{k:<18}{med:>14.0f}{med / base:>8.2f}x   {', '.join(f'{x:.0f}' for x in v)}")


if __name__ == "__main__":
    main()
