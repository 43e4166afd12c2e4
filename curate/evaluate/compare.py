"""`curate evals compare A B`: is B better than A, per benchmark and common step, beyond the noise?

The difference is B - A in percentage points. When both rows carry per-problem scores (`details.per_problem`,
written by `curate eval`), its 95% CI comes from a paired bootstrap over the problems both sides answered:
resample problems with replacement, take the mean of the per-problem differences. Pairing removes the
problem-difficulty variance two conditions share, so real effects show with far fewer problems than comparing
two independent CIs. `curate eval` keeps per-problem values for every metric (avg@k, pass@k, maj@k, asr: each
is a mean over problems; `reward` too, in the reward model's units, so its difference is in those units). Without per-problem data (imported or lm-eval rows) the CI is the unpaired normal
approximation from the two rows' own CIs, labelled as such; without those either there is no CI.

    paired_bootstrap(a, b) -> dict      (pure; a and b map problem id -> score in [0, 1])
    compare(store, a, b, benchmark=None, steps=None, rows=None) -> dict
Test: tests/test_report.py (a hand-computed small case).
"""
from __future__ import annotations

import json
import math
from typing import Mapping, Optional

from curate.errors import InputError
from curate.evaluate.metrics import UNSCALED
from curate.store import report_queries as rq

RESAMPLES = 4000


def paired_bootstrap(a: Mapping[str, float], b: Mapping[str, float], resamples: int = RESAMPLES, seed: int = 0,
                     scale: float = 100.0) -> dict:
    """Mean of b - a over the common problems (percentage points), its 95% percentile CI and a two-sided
    bootstrap p-value (twice the share of resampled means on the far side of zero, at most 1). When no resample
    falls on the far side the p-value is only known to be below 1/resamples: `p_value` is then that bound and
    `p_value_text` reads `< 0.00025` (for 4,000 resamples), never 0. `scale=1` for per-problem values in their
    own units (a reward), whose difference is in those units."""
    import numpy as np

    common = sorted(set(a) & set(b))
    out = {"n_problems": len(common), "only_a": len(set(a) - set(b)), "only_b": len(set(b) - set(a))}
    if not common:
        return {**out, "diff": None, "ci_low": None, "ci_high": None, "p_value": None, "p_value_text": None}
    d = scale * (np.array([float(b[k]) for k in common]) - np.array([float(a[k]) for k in common]))
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // len(d))  # bounded memory for big benchmarks
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        means[start:stop] = d[rng.integers(0, len(d), size=(stop - start, len(d)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    p = min(1.0, 2.0 * min(float(np.mean(means <= 0)), float(np.mean(means >= 0))))
    text = f"< {1 / resamples:.2g}" if p == 0 else f"{p:.3g}"
    return {**out, "diff": float(d.mean()), "ci_low": float(lo), "ci_high": float(hi), "p_value": p or 1 / resamples,
            "p_value_text": text}


def unpaired(va: float, vb: float, ci_a: tuple, ci_b: tuple) -> dict:
    """B - A with a normal-approximation CI from each side's 95% CI (None when either is unknown)."""
    diff = vb - va
    if None in ci_a or None in ci_b:
        return {"diff": diff, "ci_low": None, "ci_high": None}
    hw = math.hypot((ci_a[1] - ci_a[0]) / 2, (ci_b[1] - ci_b[0]) / 2)
    return {"diff": diff, "ci_low": diff - hw, "ci_high": diff + hw}


def _per_problem(raw: Optional[str]) -> Optional[dict]:
    if not raw:
        return None
    d = json.loads(raw)
    return d if isinstance(d, dict) and d else None


def _pick(ra: list[dict], rb: list[dict]) -> tuple[dict, dict]:
    """The pair of rows to compare at one (benchmark, metric, step): same settings if possible, then same suite."""
    for same in (lambda x, y: x["settings_hash"] == y["settings_hash"], lambda x, y: x["suite"] == y["suite"]):
        for x in ra:
            for y in rb:
                if same(x, y):
                    return x, y
    return ra[0], rb[0]


def compare(store, a: str, b: str, benchmark: str | None = None, resamples: int = RESAMPLES, seed: int = 0,
            steps: Optional[set] = None, rows: Optional[list[dict]] = None) -> dict:
    """Per benchmark and common step (a missing step, e.g. two hub models, counts as one): A, B, B - A with a CI,
    and how the CI was computed. `steps` keeps only those steps (the report compares at one step); `rows`, the
    output of report_queries.runs_compare_rows for these runs, saves the query when many pairs are compared."""
    if a == b:
        raise InputError("compare needs two different runs")
    if rows is None:
        rows = rq.compare_rows(store, a, b, benchmark)
    else:
        rows = [r for r in rows if r["run"] in (a, b) and (benchmark is None or r["benchmark"] == benchmark)]
    by: dict[str, dict[tuple, list[dict]]] = {a: {}, b: {}}
    for r in rows:
        if r["value"] is None or not r["complete"] or (steps is not None and r["step"] not in steps):
            continue
        by[r["run"]].setdefault((r["benchmark"], r["metric"], r["step"]), []).append(r)
    for run in (a, b):
        if not by[run]:
            what = f" on {benchmark}" if benchmark else ""
            raise InputError(f"no complete score rows for run {run!r}{what}", hint="`curate evals` lists runs and benchmarks")
    out_rows, notes, unpaired_from = [], [], set()
    for key in sorted(set(by[a]) & set(by[b]), key=lambda k: (k[0], k[1], k[2] is None, k[2] or 0)):
        x, y = _pick(by[a][key], by[b][key])
        pa, pb = _per_problem(x["per_problem"]), _per_problem(y["per_problem"])
        unscaled = key[1] in UNSCALED
        row = {"benchmark": key[0], "metric": key[1], "step": key[2], "a": x["value"], "b": y["value"],
               "higher_is_better": key[1] != "asr", "same_settings": x["settings_hash"] == y["settings_hash"],
               "unit": "score" if unscaled else "points"}
        if pa is not None and pb is not None:
            bs = paired_bootstrap(pa, pb, resamples=resamples, seed=seed, scale=1.0 if unscaled else 100.0)
            row.update(diff=bs["diff"], ci_low=bs["ci_low"], ci_high=bs["ci_high"], p_value=bs["p_value"],
                       p_value_text=bs["p_value_text"], method="paired bootstrap", n_problems=bs["n_problems"])
            if bs["only_a"] or bs["only_b"]:
                notes.append(f"{key[0]} step {key[2]}: {bs['only_a'] + bs['only_b']} problems answered by one side only "
                             "are left out of the paired difference")
        else:
            unpaired_from |= {z["provenance"] for z, p in ((x, pa), (y, pb)) if p is None}
            u = unpaired(x["value"], y["value"], (x["ci_low"], x["ci_high"]), (y["ci_low"], y["ci_high"]))
            row.update(**u, p_value=None, p_value_text=None, method="unpaired (rows' CIs)" if u["ci_low"] is not None else "no CI",
                       n_problems=None)
        row["significant"] = None if row["ci_low"] is None else (row["ci_low"] > 0 or row["ci_high"] < 0)
        out_rows.append(row)
    metrics = {run: {} for run in (a, b)}
    for run in (a, b):
        for bench, metric, _ in by[run]:
            metrics[run].setdefault(bench, set()).add(metric)
    for bench in sorted(set(metrics[a]) & set(metrics[b])):
        if not metrics[a][bench] & metrics[b][bench]:
            notes.append(f"{bench}: not compared, {a} has {', '.join(sorted(metrics[a][bench]))} and "
                         f"{b} has {', '.join(sorted(metrics[b][bench]))}")
    if not out_rows:
        notes.append(f"{a} and {b} share no (benchmark, metric, step) with complete scores")
    if unpaired_from:
        notes.append(f"rows without per-problem scores (provenance: {', '.join(sorted(unpaired_from))}) are compared unpaired, "
                     "from each row's own CI (assumes independence, so wider); 'no CI' where a row has none")
    if any(not r["higher_is_better"] for r in out_rows):
        notes.append("asr (attack success rate): lower is better, so a negative B - A favours B")
    if any(r["unit"] == "score" for r in out_rows):
        notes.append("reward: B - A in the reward model's own units, not percentage points")
    if any(not r["same_settings"] for r in out_rows):
        notes.append("some steps compare rows evaluated with different settings (same_settings = no)")
    return {"a": a, "b": b, "difference": "b - a (percentage points)", "rows": out_rows, "notes": notes}
