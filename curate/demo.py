"""`curate demo`: the whole pipeline on embedded defaults, with no GPU, no network and no model download.

Countdown problems -> synthetic search traces (a share deliberately wrong) -> countdown verifier ->
trace store -> three mixtures (verified, 50% verified-incorrect, thinking removed) -> a comparison table.
Rerunning reuses the store (content-hash ids make every step a no-op for what is already there).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from curate.store import TraceStore, queries

# The three conditions the demo contrasts, as recipe overrides of one countdown recipe.
CONDITIONS = {
    "verified": {},
    # draw problems that have a flawed trace, so small runs still reach the 50% share
    "incorrect-50": {"quality": {"incorrect_fraction": 0.5}, "selection": {"require_incorrect": True}},
    "no-thinking": {"quality": {"strip_thinking": True}},
}


@dataclass(frozen=True)
class DemoConfig:
    problems: int = 400
    samples_per_problem: int = 4
    wrong_share: float = 0.35  # the synthetic teacher's share of traces with a wrong final answer
    mixture_size: int = 200
    workers: int = 2
    seed: int = 0


@dataclass
class DemoReport:
    steps: list[dict] = field(default_factory=list)
    mixtures: list[dict] = field(default_factory=list)
    store_summary: list[dict] = field(default_factory=list)


def _recipe(name: str, cfg: DemoConfig, override: dict):
    from curate.mix.recipe import validate_recipe

    data = {
        "name": f"demo-{name}",
        "description": f"curate demo: countdown traces, condition '{name}'",
        "seed": cfg.seed,
        "size": cfg.mixture_size,
        "allow_smaller": True,
        "sources": [{"name": "countdown", "where": "source = 'countdown' AND split = 'train'"}],
        "selection": {"per_problem": "one_random_correct"},
        "filters": {"no_truncation": True},
        "decontaminate": {"enabled": False},
    }
    for key, value in override.items():
        data[key] = {**data.get(key, {}), **value}
    return validate_recipe(data, origin=f"demo condition {name}")


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
    added = tasks.add_problems(store, "countdown", size=cfg.problems, seed=cfg.seed)
    report.steps.append({"step": "problems", "detail": f"{added['added']} new countdown problems ({added['seen']} generated)",
                         "seconds": round(time.perf_counter() - t, 2)})
    say(f"1/4 problems: {report.steps[-1]['detail']}")

    t = time.perf_counter()
    backend = SyntheticBackend(config=SyntheticConfig(wrong_share=cfg.wrong_share))
    run = runner.run(store, backend, "source = 'countdown'", runner.RunConfig(n=cfg.samples_per_problem, seed=cfg.seed),
                     progress=False)
    report.steps.append({"step": "generate", "detail": f"{run.generated} new synthetic traces ({run.existing} already stored)",
                         "seconds": round(time.perf_counter() - t, 2)})
    say(f"2/4 generate: {report.steps[-1]['detail']}")

    t = time.perf_counter()
    lab = label_store(store, workers=cfg.workers)
    report.steps.append({"step": "verify", "detail": f"{lab.written} new verdicts", "seconds": round(time.perf_counter() - t, 2)})
    say(f"3/4 verify: {report.steps[-1]['detail']}")

    t = time.perf_counter()
    for name, override in CONDITIONS.items():
        manifest = mix_recipe(_recipe(name, cfg, override), store, out / "mixtures" / name, overwrite=True)[0]
        report.mixtures.append(_summarise_mixture(name, out / "mixtures" / name, manifest))
    report.steps.append({"step": "mix", "detail": f"{len(CONDITIONS)} mixtures under {out / 'mixtures'}",
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
