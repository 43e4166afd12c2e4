"""`curate demo`: the whole pipeline on embedded defaults, with no GPU, no network and no model download.

Chain-sum problems (train, and the held-out eval set the `chain-sum` suite scores) -> synthetic scratchpad
traces (half of them with one slipped partial sum) -> math verifier -> trace store -> the three mixtures of the
`demo` study (verified, 50% verified-incorrect, thinking removed) -> a comparison table. The mixtures are built
from the demo study's own resolved recipes, so they are byte-identical to the ones `curate study run demo`
builds (and trains on) under demo-out/study/mixtures: same recipe, same store, same dataset.
Rerunning reuses the store (content-hash ids make every step a no-op for what is already there).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from curate.store import TraceStore, queries

STUDY = "demo"  # the shipped study whose conditions the demo's mixtures are


@dataclass(frozen=True)
class DemoConfig:
    problems: int = 4800  # train-split chain sums
    eval_problems: int = 200  # the `chain-sum` suite's held-out set (seed 1000), added before mixing
    samples_per_problem: int = 4
    wrong_share: float = 0.5  # the synthetic teacher's share of traces with one slipped partial sum
    mixture_size: Optional[int] = None  # None: the demo study's recipe size (then the mixtures are the study's)
    workers: int = 2
    seed: int = 0


@dataclass
class DemoReport:
    steps: list[dict] = field(default_factory=list)
    mixtures: list[dict] = field(default_factory=list)
    store_summary: list[dict] = field(default_factory=list)


def study_recipes(cfg: DemoConfig) -> dict:
    """Mixture name -> resolved recipe of the demo study (its conditions with their overrides applied)."""
    from curate.study.plan import build_plan

    plan = build_plan(STUDY)
    out = {}
    for name, m in plan.mixtures.items():
        out[name] = m.recipe if cfg.mixture_size is None else m.recipe.model_copy(update={"size": cfg.mixture_size})
    return out


def run_demo(store_path: Path, out: Path, cfg: DemoConfig = DemoConfig(),
             say: Callable[[str], None] = print) -> DemoReport:
    from curate import tasks
    from curate.generate import runner
    from curate.generate.synthetic import SyntheticBackend, SyntheticConfig
    from curate.label import label_store
    from curate.mix import mix_recipe

    store = TraceStore(store_path)
    report = DemoReport()

    t = time.perf_counter()
    held = tasks.add_problems(store, "chain_sum", size=cfg.eval_problems, seed=1000, split="eval")
    added = tasks.add_problems(store, "chain_sum", size=cfg.problems, seed=cfg.seed)
    report.steps.append({"step": "problems", "detail": f"{added['added']} new chain-sum problems ({added['seen']} generated), "
                         f"{held['added']} new held-out eval problems", "seconds": round(time.perf_counter() - t, 2)})
    say(f"1/4 problems: {report.steps[-1]['detail']}")

    t = time.perf_counter()
    backend = SyntheticBackend(model="chain-sum-scratchpad", config=SyntheticConfig(wrong_share=cfg.wrong_share))
    run = runner.run(store, backend, "source = 'chain_sum' AND split = 'train'",
                     runner.RunConfig(n=cfg.samples_per_problem, seed=cfg.seed), progress=False)
    report.steps.append({"step": "generate", "detail": f"{run.generated} new synthetic traces ({run.existing} already stored)",
                         "seconds": round(time.perf_counter() - t, 2)})
    say(f"2/4 generate: {report.steps[-1]['detail']}")

    t = time.perf_counter()
    lab = label_store(store, workers=cfg.workers)
    report.steps.append({"step": "verify", "detail": f"{lab.written} new verdicts", "seconds": round(time.perf_counter() - t, 2)})
    say(f"3/4 verify: {report.steps[-1]['detail']}")

    t = time.perf_counter()
    recipes = study_recipes(cfg)
    for name, recipe in recipes.items():
        manifest = mix_recipe(recipe, store, out / "mixtures" / name, overwrite=True)[0]
        report.mixtures.append(_summarise_mixture(name, out / "mixtures" / name, manifest))
    same = "the demo study's mixtures" if cfg.mixture_size is None else f"the demo study's recipes at size {cfg.mixture_size}"
    report.steps.append({"step": "mix", "detail": f"{len(recipes)} mixtures under {out / 'mixtures'} ({same})",
                         "seconds": round(time.perf_counter() - t, 2)})
    say(f"4/4 mix: {report.steps[-1]['detail']}")
    report.store_summary = queries.trace_summary(store)
    return report


def _summarise_mixture(name: str, path: Path, manifest: dict) -> dict:
    """Measure the written mixture itself (not the recipe): rows, incorrect share, thinking, length."""
    import pyarrow.parquet as pq

    from curate.mix.export import PARQUET

    rows = pq.read_table(path / PARQUET).to_pylist()
    responses = [next(m["content"] for m in r["messages"] if m["role"] == "assistant") for r in rows]
    incorrect = sum(r["status"] == "incorrect" for r in rows)
    n = len(rows) or 1
    return {
        "mixture": name,
        "rows": len(rows),
        "incorrect": round(incorrect / n, 3),
        "thinking": round(sum("</think>" in r for r in responses) / n, 3),
        "avg_chars": round(sum(map(len, responses)) / n),
        "recipe": manifest["recipe_hash"][:8],
        "path": str(path),
    }


def report_json(report: DemoReport) -> str:
    return json.dumps({"steps": report.steps, "mixtures": report.mixtures, "store": report.store_summary}, indent=2)
