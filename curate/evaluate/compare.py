"""`curate evals compare A B`: is B better than A, per benchmark and common step, beyond the noise?

The difference is B - A in percentage points. When both rows carry per-problem scores (`details.per_problem`,
written by `curate eval`), its 95% CI comes from a paired bootstrap over the problems both sides answered:
resample problems with replacement, take the mean of the per-problem differences. Pairing removes the
problem-difficulty variance two conditions share, so real effects show with far fewer problems than comparing
two independent CIs. `curate eval` keeps per-problem values for every metric (avg@k, pass@k, maj@k, asr: each
is a mean over problems; `reward` too, in the reward model's units, so its difference is in those units). Without per-problem data (imported or lm-eval rows) the CI is the unpaired normal
approximation from the two rows' own CIs, labelled as such; without those either there is no CI.

Runs are named in the evals table's `run` column, and a name can stand for more than one evaluation: two studies
with the same condition names (rows with different training run ids), or one checkpoint evaluated twice with
different settings. Each side is one evaluation, never a mix across steps: among runs sharing a name, the newest
training run id (rows without one count as one run), unless `pick` names another (a run id or its prefix, `none`
for the rows without one); within it, per benchmark, the settings both sides share, else the same suite, else the
newest. Every such choice is a note in the output, and the result's `a_run_id` / `b_run_id` say what was compared.
Rows of one name without a run id (hub models, imported files, runs trained outside curate) are not told apart.

    paired_bootstrap(a, b) -> dict      (pure; a and b map problem id -> score in [0, 1])
    compare(store, a, b, benchmark=None, steps=None, rows=None, pick=None) -> dict
Test: tests/test_report.py (a hand-computed small case).
"""
from __future__ import annotations

import json
import math
from typing import Iterable, Mapping, Optional

from curate.errors import InputError
from curate.evaluate.metrics import UNSCALED
from curate.store.evals import score_rows_of_runs

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


def _newest(rows: list[dict], key) -> dict:
    """key(row) -> the newest created_at among the rows with that key, newest key first."""
    out: dict = {}
    for r in rows:
        k = key(r)
        out[k] = max(out.get(k, r["created_at"]), r["created_at"])
    return dict(sorted(out.items(), key=lambda kv: (kv[1], kv[0]), reverse=True))  # a tie: by key, deterministic


def _id_text(run_id: str) -> str:
    return run_id or "none (no run id)"


def _when(t) -> str:
    return f", evaluated {str(t)[:19]}"


def match_run_id(run: str, known: Iterable[str], wanted: str, listed: str, rows: str) -> str:
    """The one run id among `known` ('' for rows without one) that `wanted` names: that id, else the one it is a
    prefix of; `none` names ''. InputError when it matches none or several, listing `listed` and naming `rows`
    (what has no run id: "the rows", "samples") in the hint. `curate evals compare` and the eval explorer."""
    known = list(known)
    hits = [i for i in known if i == wanted] or [i for i in known if (i == "" if wanted == "none" else i.startswith(wanted))]
    if len(hits) != 1:
        raise InputError(f"run {run!r}: run id {wanted!r} {'matches several' if hits else 'matches none'} of its run "
                         f"ids: {listed}", hint=f"give a longer prefix of one of them, or `none` for {rows} without a run id")
    return hits[0]


def pick_run(run: str, rows: list[dict], wanted: str | None = None, option: str = "--a-id/--b-id") -> tuple[str, str | None]:
    """Which training run id ('' for rows without one) to compare among the rows of runs named RUN, and a note
    when the name stands for several. `wanted` is a run id or its prefix, or `none`; InputError when it matches
    none or more than one. `option` is how a user picks another (named in the note)."""
    ids = _newest(rows, lambda r: r["run_id"] or "")
    listed = "; ".join(f"{_id_text(i)}{_when(t)}" for i, t in ids.items())
    if wanted is not None:
        hit = match_run_id(run, ids, wanted, listed, "the rows")
        return hit, (f"run {run!r} names {len(ids)} runs in the store; compared run id {_id_text(hit)} as asked"
                     if len(ids) > 1 else None)
    chosen = next(iter(ids))
    if len(ids) == 1:
        return chosen, None
    return chosen, (f"run {run!r} names {len(ids)} runs in the store ({listed}); compared the newest, run id "
                    f"{_id_text(chosen)}; pick another with {option} (a run id prefix, or `none`)")


def pick_settings(bench: str, a: str, b: str, ra: list[dict], rb: list[dict],
                  fixed: dict[str, str | None]) -> tuple[str, str, list[str]]:
    """The settings hash of each side on one benchmark: one given in `fixed`, else the newest both share, else
    the newest pair in the same suite, else each side's newest; with a note for a side evaluated several ways."""
    sa, sb = _newest(ra, lambda r: (r["suite"], r["settings_hash"])), _newest(rb, lambda r: (r["suite"], r["settings_hash"]))
    ka = [k for k in sa if fixed.get(a) in (None, k[1])] or list(sa)
    kb = [k for k in sb if fixed.get(b) in (None, k[1])] or list(sb)
    pair = (next(((x, y) for x in ka for y in kb if x[1] == y[1]), None)
            or next(((x, y) for x in ka for y in kb if x[0] == y[0]), None) or (ka[0], kb[0]))
    why = "the settings both sides share" if pair[0][1] == pair[1][1] else \
        "the newest in the suite both share" if pair[0][0] == pair[1][0] else "the newest"
    notes = [f"{bench}: {run} was evaluated with {len(s)} different settings; compared settings {k[1][:8]} (suite {k[0]}), "
             f"{'as given' if fixed.get(run) else why}"
             for run, s, k in ((a, sa, pair[0]), (b, sb, pair[1])) if len(s) > 1]
    return pair[0][1], pair[1][1], notes


def compare(store, a: str, b: str, benchmark: str | None = None, resamples: int = RESAMPLES, seed: int = 0,
            steps: Optional[set] = None, rows: Optional[list[dict]] = None,
            pick: Optional[Mapping[str, Mapping[str, Optional[str]]]] = None) -> dict:
    """Per benchmark and common step (a missing step, e.g. two hub models, counts as one): A, B, B - A with a CI,
    and how the CI was computed. `steps` keeps only those steps (the report compares at one step); `rows`, the
    output of store.evals.score_rows_of_runs for these runs, saves the query when many pairs are compared.
    `pick`: run name -> {"run_id": id, prefix or `none`; "settings_hash": hash}, either optional (see the module
    docstring for the choice without it)."""
    if a == b:
        raise InputError("compare needs two different runs")
    if rows is None:
        rows = score_rows_of_runs(store, [a, b], benchmark)
    usable: dict[str, list[dict]] = {a: [], b: []}
    for r in rows:
        if r["run"] in usable and (benchmark is None or r["benchmark"] == benchmark) and r["value"] is not None \
                and r["complete"] and (steps is None or r["step"] in steps):
            usable[r["run"]].append(r)
    for run in (a, b):
        if not usable[run]:
            what = f" on {benchmark}" if benchmark else ""
            raise InputError(f"no complete score rows for run {run!r}{what}", hint="`curate evals` lists runs and benchmarks")
    pick = pick or {}
    notes: list[str] = []
    chosen_id: dict[str, str] = {}
    for run in (a, b):
        chosen_id[run], note = pick_run(run, usable[run], (pick.get(run) or {}).get("run_id"), "--a-id" if run == a else "--b-id")
        notes += [note] if note else []
        usable[run] = [r for r in usable[run] if (r["run_id"] or "") == chosen_id[run]]
    fixed = {run: (pick.get(run) or {}).get("settings_hash") for run in (a, b)}
    by: dict[str, dict[tuple, dict]] = {a: {}, b: {}}
    for bench in sorted({r["benchmark"] for r in usable[a]} & {r["benchmark"] for r in usable[b]}):
        ra, rb = ([r for r in usable[run] if r["benchmark"] == bench] for run in (a, b))
        ha, hb, why = pick_settings(bench, a, b, ra, rb, fixed)
        notes += why
        for run, rs, h in ((a, ra, ha), (b, rb, hb)):
            for r in rs:  # newest first within a step
                if r["settings_hash"] == h:
                    by[run].setdefault((r["benchmark"], r["metric"], r["step"]), r)
    out_rows, unpaired_from = [], set()
    for key in sorted(set(by[a]) & set(by[b]), key=lambda k: (k[0], k[1], k[2] is None, k[2] or 0)):
        x, y = by[a][key], by[b][key]
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
    return {"a": a, "b": b, "a_run_id": chosen_id[a] or None, "b_run_id": chosen_id[b] or None,
            "difference": "b - a (percentage points)", "rows": out_rows, "notes": notes}
