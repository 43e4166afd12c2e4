"""What `curate report` says in words before any figure: the answer, how sure it is, and under which settings.

    findings(store, rows, benchmarks) -> dict   (rows: report_queries.eval_curves; benchmarks: report.score_curves)

- Conditions: runs are grouped by what a study recorded (`study_run_rows`: condition x base model); runs of one
  group differ by seed. A run no study recorded is a group of its own.
- Headline, per benchmark in its headline metric, at the last step every compared run was evaluated at: per
  condition the mean over seeds with a 95% t-interval across seeds (one seed: the row's own CI over problems),
  and the leader (best mean) against every other condition of the same base model through
  `compare.compare`, the function behind `curate evals compare`. Runs of two conditions are paired by seed;
  with several seed pairs the difference is the mean of the per-seed differences, its CI a t-interval across
  them. A difference is inside run-to-run noise when its CI includes 0 or it is smaller than the spread
  (max - min) between the seeds of either condition.
- Behaviour per condition (response tokens, truncation share) with CIs: across seeds, or, with one seed,
  over the evaluation's samples (normal interval for the mean, Wilson for the share).
- Settings of every run (read by run_info.py): eval settings from the score rows' `details.settings` and the samples' backend;
  training config (lr, steps, batch, max length, seed) from the run folder's config.yaml; the training loss
  from its metrics.jsonl. The run folder is the study's record, else the parent of the checkpoint folder.
- Warnings: every score zero; most eval responses truncated (names max_tokens); differences inside noise;
  one seed per condition.
- Dose-response: conditions whose mixtures' recipes differ only in `quality.incorrect_fraction` (read from
  each mixture's manifest.json, `recipe.quality.incorrect_fraction`), at three or more distinct values:
  score vs share with CIs and a least-squares slope over the runs with its 95% CI.
- Runs sharing a name (two studies' cells, or one run evaluated with several settings) contribute their newest
  curve on each benchmark (by when it was evaluated), compared through `compare.compare` with that same curve
  picked; a warning names the run ids and settings left out. The condition's seed, group, behaviour (rows and
  responses) and mixture come from that run id too. What lists every run (run_table, eval settings, loss) is
  keyed by (run, run id) and labelled `name [run id8]` where a name stands for several; rows without a run
  id stay one run per name.
Known issues: seeds that do not match between two conditions are paired in sorted order (said in the method).
Test: tests/test_report_findings.py.
"""
from __future__ import annotations

import itertools
import json
import math

from curate.evaluate.compare import compare
from curate.evaluate.metrics import UNSCALED
from curate.evaluate.run_info import KNOB_NAME, eval_settings, run_table
from curate.store import report_queries as rq
from curate.store.evals import score_rows_of_runs

TRUNCATION_WARN = 50.0  # % of eval responses cut at max_tokens above which the scores measure the budget
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


# ------------------------------------------------------------------ small statistics
def t975(df: int) -> float:
    """Two-sided 95% quantile of Student's t (a table to 30 degrees of freedom, then a close approximation)."""
    return _T975[df - 1] if df <= len(_T975) else 1.96 + 2.4 / df


def mean_ci(values: list[float], bounds: tuple[float, float] = (-math.inf, math.inf)
            ) -> tuple[float | None, float | None, float | None]:
    """Mean and 95% t-interval (clipped to the metric's bounds); no interval for fewer than two values."""
    if not values:
        return None, None, None
    n = len(values)
    m = sum(values) / n
    if n < 2:
        return m, None, None
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    hw = t975(n - 1) * sd / math.sqrt(n)
    return m, max(bounds[0], m - hw), min(bounds[1], m + hw)


def wilson(p: float, n: int) -> tuple[float, float]:
    """95% Wilson interval of a share p observed over n trials (as fractions)."""
    z = 1.96
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    hw = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - hw), min(1.0, mid + hw)


def slope_fit(xs: list[float], ys: list[float]) -> dict:
    """Least-squares line y = a + b x with the slope's 95% t-interval (None with fewer than three points)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return {"slope": None, "intercept": None, "ci_low": None, "ci_high": None}
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    lo = hi = None
    if n > 2:
        sse = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
        hw = t975(n - 2) * math.sqrt(sse / (n - 2) / sxx)
        lo, hi = b - hw, b + hw
    return {"slope": b, "intercept": a, "ci_low": lo, "ci_high": hi}


def _pts(v: float | None) -> str:
    return "n/a" if v is None else f"{round(v, 1) + 0.0:.1f}"  # + 0.0: never print -0.0


def _ci(lo, hi) -> str:
    return "(no CI)" if lo is None or hi is None else f"[{_pts(lo)}, {_pts(hi)}]"


def _label(g: tuple, many_models: bool) -> str:
    return f"{g[0]} / {g[1]}" if many_models and g[1] else g[0]


# ------------------------------------------------------------------ headline
def _run_curves(bench: dict, metric: str) -> tuple[dict[str, dict], list[str]]:
    """run -> its newest curve on the benchmark in `metric`, and a note per run name that stands for several."""
    by_run: dict[str, list[dict]] = {}
    for c in bench["curves"]:
        if c["metric"] == metric:
            by_run.setdefault(c["run"], []).append(c)
    chosen = {run: max(cs, key=lambda c: c["evaluated_at"]) for run, cs in by_run.items()}
    notes = []
    for run, cs in sorted(by_run.items()):
        if len(cs) > 1:
            c = chosen[run]
            listed = "; ".join(f"{o['label']}, evaluated {o['evaluated_at'][:19]}" for o in cs)
            notes.append(f"{bench['benchmark']}: run name {run} stands for {len(cs)} evaluations ({listed}); the answer "
                         f"uses the newest, {c['label']}")
    return chosen, notes


def _pick_step(groups: dict[tuple, list[str]], values: dict[str, dict]) -> tuple[int | None, list[tuple]]:
    """The last step at which every run of the most groups has a score; the groups left without it."""
    steps = sorted({s for r in values.values() for s in r}, reverse=True)
    best, best_n = None, 0
    for s in steps:
        n = sum(all(s in values[r] for r in runs) for runs in groups.values())
        if n > best_n:
            best, best_n = s, n
        if n == len(groups):
            break
    if best is None:
        return None, list(groups)
    return best, [g for g, runs in groups.items() if not all(best in values[r] for r in runs)]


def _group_stats(label: str, g: tuple, runs: list[str], info: dict, values: dict, step: int,
                 percent: bool = True) -> dict:
    vals = [values[r][step]["value"] for r in runs]
    m, lo, hi = mean_ci(vals, bounds=(0.0, 100.0) if percent else (-math.inf, math.inf))
    over = f"{len(runs)} seeds"
    if len(runs) == 1:
        p = values[runs[0]][step]
        lo, hi, over = p["ci_low"], p["ci_high"], "problems (1 seed)"
    return {"label": label, "condition": g[0], "model": g[1], "runs": runs, "run_ids": [info[r]["run_id"] for r in runs],
            "seeds": [info[r]["seed"] for r in runs],
            "n_seeds": len(runs), "step": step, "mean": m, "ci_low": lo, "ci_high": hi, "ci_over": over,
            "spread": max(vals) - min(vals) if len(vals) > 1 else None, "values": vals}


def _seed_pairs(a: list[str], b: list[str], info: dict) -> tuple[list[tuple[str, str]], bool]:
    """Runs of two conditions paired by seed; unmatched ones in sorted order (second value: all matched by seed)."""
    sa = {info[r]["seed"]: r for r in a if info[r]["seed"] is not None}
    sb = {info[r]["seed"]: r for r in b if info[r]["seed"] is not None}
    pairs = [(sa[s], sb[s]) for s in sorted(set(sa) & set(sb), key=str)]
    used = {x for p in pairs for x in p}
    rest = list(zip(sorted(r for r in a if r not in used), sorted(r for r in b if r not in used)))
    return pairs + rest, not rest


def _comparison(store, bench: str, metric: str, step: int, leader: dict, other: dict, info: dict,
                higher: bool, rows: list[dict], pick: dict) -> dict:
    pairs, by_seed = _seed_pairs(other["runs"], leader["runs"], info)
    per_seed = []
    for ra, rb in pairs:
        res = compare(store, ra, rb, benchmark=bench, steps={step}, rows=rows, pick={r: pick[r] for r in (ra, rb)})
        row = next((x for x in res["rows"] if x["metric"] == metric and x["step"] == step), None)
        if row is not None:
            per_seed.append({"run_a": ra, "run_b": rb, "seed": info[rb]["seed"], "value_a": row["a"], "value_b": row["b"],
                             **{k: row[k] for k in ("diff", "ci_low", "ci_high", "p_value", "method", "n_problems")}})
    out = {"benchmark": bench, "metric": metric, "step": step, "leader": leader["label"], "other": other["label"],
           "difference": "leader - other, as `curate evals compare OTHER LEADER` "
                         + ("(the reward model's units)" if metric in UNSCALED else "(percentage points)"), "per_seed": per_seed}
    if not per_seed:
        return {**out, "diff": None, "ci_low": None, "ci_high": None, "method": "no common rows", "n_pairs": 0}
    if len(per_seed) == 1:
        r = per_seed[0]
        method = r["method"] + (f" over {r['n_problems']} problems" if r["n_problems"] else "")
        out.update(diff=r["diff"], ci_low=r["ci_low"], ci_high=r["ci_high"], n_pairs=1,
                   method=method + (", 1 seed" if r["seed"] is not None else ", 1 run each"))
    else:
        m, lo, hi = mean_ci([r["diff"] for r in per_seed], bounds=(-math.inf, math.inf) if metric in UNSCALED else (-100.0, 100.0))
        out.update(diff=m, ci_low=lo, ci_high=hi, n_pairs=len(per_seed),
                   method=f"mean over {len(per_seed)} seeds of the {per_seed[0]['method']} differences"
                          + ("" if by_seed else " (runs paired in name order: their seeds differ)")
                          + ", t-interval across seeds")
    spread = max([s for s in (leader["spread"], other["spread"]) if s is not None], default=None)
    reasons = []
    if out["ci_low"] is not None and out["ci_low"] <= 0 <= out["ci_high"]:
        reasons.append("its CI includes 0")
    if spread is not None and abs(out["diff"]) < spread - 1e-9:
        reasons.append(f"it is smaller than the spread between seeds, {spread:.1f} points")
    out["seed_spread"] = spread
    out["inside_noise"] = bool(reasons) if out["ci_low"] is not None or spread is not None else None
    out["noise_reason"] = " and ".join(reasons)
    out["sentence"] = _sentence(out, higher)
    return out


def _sentence(c: dict, higher: bool) -> str:
    d, lo, hi = c["diff"], c["ci_low"], c["ci_high"]
    if d is None:
        return f"{c['leader']} vs {c['other']}: no common scores at step {c['step']}"
    adv = round(d if higher else -d, 9)  # a bootstrap mean of equal scores may carry float dust
    if not higher and lo is not None:
        lo, hi = -hi, -lo
    ci = "" if lo is None else f" {_ci(lo, hi)}"
    if adv > 0:
        s = f"{c['leader']} beats {c['other']} by {adv:.1f} points{ci}"
    elif adv < 0:
        s = f"{c['other']} beats {c['leader']} by {-adv:.1f} points" + ("" if lo is None else f" {_ci(-hi, -lo)}")
    else:
        s = f"{c['leader']} and {c['other']} score the same{ci}"
    s += f" ({c['method']}) at step {c['step']}"
    if c["inside_noise"]:
        s += f": inside run-to-run noise ({c['noise_reason']})"
    elif c["inside_noise"] is False:
        s += ": outside the noise (" + " and ".join(
            ([] if lo is None else ["its CI excludes 0"])
            + ([] if c["seed_spread"] is None else [f"it exceeds the spread between seeds, {c['seed_spread']:.1f} points"])) + ")"
    return s


def headline(store, benchmarks: list[dict], info: dict) -> list[dict]:
    from curate.evaluate.results import headline_rank

    many_models = len({i["model"] for i in info.values()}) > 1
    out = []
    for b in benchmarks:
        metric = min(b["metrics"], key=headline_rank)
        curves, picked = _run_curves(b, metric)
        values = {run: {p["step"]: p for p in c["points"]} for run, c in curves.items()}
        pick = {run: {"run_id": c["run_id"] or "", "settings_hash": c["settings_hash"]} for run, c in curves.items()}
        chosen = {run: info[(run, pick[run]["run_id"])] for run in curves}  # the seed, group and folder of the run compared
        groups: dict[tuple, list[str]] = {}
        for run in sorted(values):
            groups.setdefault((chosen[run]["condition"], chosen[run]["model"]), []).append(run)
        step, missing = _pick_step(groups, values)
        if step is None:
            continue
        higher = metric != "asr"
        stats = [_group_stats(_label(g, many_models), g, runs, chosen, values, step, percent=metric not in UNSCALED)
                 for g, runs in groups.items() if g not in missing]
        comps = []
        rows = score_rows_of_runs(store, [r for s in stats for r in s["runs"]], b["benchmark"], [step]) \
            if len(stats) > 1 else []
        for model in sorted({s["model"] for s in stats}, key=str):
            same = sorted((s for s in stats if s["model"] == model),
                          key=lambda s: ((-s["mean"]) if higher else s["mean"], s["label"]))
            for other in same[1:]:
                comps.append(_comparison(store, b["benchmark"], metric, step, same[0], other, chosen, higher, rows, pick))
        all_zero = all(v == 0 for st in stats for v in st["values"])
        if all_zero and len(stats) > 1:
            text = f"every condition scores 0 ({sum(st['n_seeds'] for st in stats)} runs), so they cannot be told apart"
        elif comps:
            text = "; ".join(c["sentence"] for c in comps)
        else:
            text = f"one condition only, {stats[0]['label']} scores {_pts(stats[0]['mean'])} " \
                   f"{_ci(stats[0]['ci_low'], stats[0]['ci_high'])}"
        out.append({"benchmark": b["benchmark"], "metric": metric, "step": step, "higher_is_better": higher,
                    "conditions": sorted(stats, key=lambda s: s["label"]), "comparisons": comps, "all_zero": all_zero,
                    "missing": [_label(g, many_models) for g in missing], "picked": picked, "pick": pick,
                    "text": f"{b['benchmark']} ({metric}, step {step}): {text}"})
    return out


# ------------------------------------------------------------------ behaviour with CIs
# behaviour metric of the evals table -> the column of report_queries.eval_sample_stats with its per-response spread
SPREAD = {"mean_tokens": "sd_tokens", "backtracks": "sd_backtracks", "verifications": "sd_verifications",
          "repetition": "sd_repetition"}
BEHAVIOUR_CI = ("mean_tokens", "truncation_rate", "backtracks", "verifications", "repetition")


def behaviour_cis(store, rows: list[dict], heads: list[dict], info: dict) -> list[dict]:
    """Per condition and benchmark, at the headline step: response tokens, truncation share and the trace
    markers (backtracks, verifications, repetition) where recorded, with 95% CIs."""
    vals: dict[tuple, float] = {}
    for r in rows:  # newest first within a key
        if r["kind"] == "behaviour" and r["metric"] in BEHAVIOUR_CI and r["value"] is not None:
            vals.setdefault((r["run"], r["run_id"] or "", r["settings_hash"], r["benchmark"], r["step"], r["metric"]), r["value"])
    samples = {}
    for s in rq.eval_sample_stats(store):
        samples.setdefault((s["run"], s["run_id"] or "", s["settings_hash"], s["benchmark"], s["step"]), s)
    out = []
    for h in heads:
        for c in h["conditions"]:
            keys = {r: (r, h["pick"][r]["run_id"], h["pick"][r]["settings_hash"], h["benchmark"], h["step"]) for r in c["runs"]}
            for metric in BEHAVIOUR_CI:
                found = [(r, vals[(*k, metric)]) for r, k in keys.items() if (*k, metric) in vals]
                if not found:
                    continue
                v = [x for _, x in found]
                m, lo, hi = mean_ci(v, bounds=(0.0, 100.0 if metric == "truncation_rate" else math.inf))
                over = f"{len(v)} seeds"
                if len(v) == 1:  # the spread over the responses of the one evaluation that gave the value
                    over, s = "no CI", samples.get(keys[found[0][0]])
                    if s and s["n"]:
                        over = f"{s['n']} responses"
                        if metric == "truncation_rate":
                            lo, hi = (100 * x for x in wilson(m / 100, s["n"]))
                        elif s.get(SPREAD[metric]) is not None:
                            hw = 1.96 * s[SPREAD[metric]] / math.sqrt(s["n"])
                            lo, hi = max(0.0, m - hw), m + hw
                out.append({"condition": c["label"], "benchmark": h["benchmark"], "step": h["step"], "metric": metric,
                            "mean": m, "ci_low": lo, "ci_high": hi, "ci_over": over})
    return out


# ------------------------------------------------------------------ dose-response
def _first(info: dict, h: dict, c: dict) -> dict:
    """What is known about the first run of a headline condition: the run id the answer compared."""
    return info[(c["runs"][0], h["pick"][c["runs"][0]]["run_id"])]


def dose_response(heads: list[dict], info: dict) -> tuple[list[dict], str | None]:
    """Score vs the incorrect share, per benchmark and family of otherwise-equal recipes with >= 3 shares."""
    out = []
    for h in heads:
        fam: dict[tuple, list[dict]] = {}
        for c in h["conditions"]:
            r0 = _first(info, h, c)
            if r0["knob"] is not None:
                fam.setdefault((c["model"], r0["knob_family"]), []).append(c)
        for (model, _), conds in fam.items():
            xs = sorted({_first(info, h, c)["knob"] for c in conds})
            if len(xs) < 3:
                continue
            pts, fx, fy = [], [], []
            for c in sorted(conds, key=lambda c: (_first(info, h, c)["knob"], c["label"])):
                x = _first(info, h, c)["knob"]
                pts.append({"condition": c["label"], "share": x, "actual_share": _first(info, h, c)["knob_actual"],
                            "mean": c["mean"], "ci_low": c["ci_low"], "ci_high": c["ci_high"], "n_seeds": c["n_seeds"]})
                fx += [x] * len(c["values"])
                fy += c["values"]
            fit = slope_fit(fx, fy)
            means = [sum(p["mean"] for p in pts if p["share"] == x) / sum(p["share"] == x for p in pts) for x in xs]
            d = [b - a for a, b in itertools.pairwise(means)]
            trend = "rises" if all(x > 0 for x in d) else "falls" if all(x < 0 for x in d) else None
            item = {"benchmark": h["benchmark"], "metric": h["metric"], "step": h["step"], "knob": KNOB_NAME,
                    "model": model, "points": pts, "n_runs": len(fx), "shares": xs, "monotone": trend, **fit}
            item["sentence"] = _dose_sentence(item, h["higher_is_better"])
            out.append(item)
    why = None
    if not out:
        why = (f"no three or more conditions differing only in {KNOB_NAME} (read from each run's mixture "
               "manifest.json, recipe.quality)")
        known = [i for i in info.values() if i["knob"] is not None]
        if len({i["knob"] for i in known}) >= 3:
            fields = _differing([i["knob_family"] for i in known])
            why += f"; the conditions with {len({i['knob'] for i in known})} shares also differ in {', '.join(fields)}"
    return out, why


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _differing(families: list[str]) -> list[str]:
    """The recipe fields (dotted) whose values differ between these recipes."""
    flat = [_flat(json.loads(f)) for f in set(families)]
    keys = sorted({k for f in flat for k in f})
    return [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1]


def _dose_sentence(d: dict, higher: bool) -> str:
    head = (f"{d['benchmark']} ({d['metric']}, step {d['step']}) over {KNOB_NAME} "
            f"{', '.join(f'{x:g}' for x in d['shares'])} ({d['n_runs']} runs)")
    if d["slope"] is None:
        return head + ": no slope (every run at one share)"
    per = d["slope"] / 10  # per 0.1 of share
    s = (f"{head}: the least-squares line over the runs changes the score by {per:+.1f} points per +0.1 share "
         f"(slope {d['slope']:+.1f} points from share 0 to 1, 95% CI {_ci(d['ci_low'], d['ci_high'])})")
    if d["ci_low"] is None:
        s += "; too few runs for a CI"
    elif d["ci_low"] <= 0 <= d["ci_high"]:
        s += "; no clear trend: the slope's CI includes 0"
    else:
        better = (d["slope"] > 0) == higher
        s += f"; more incorrect traces make it {'better' if better else 'worse'}"
    if d["monotone"]:
        s += f"; the condition means {d['monotone'][:-1]} with every increase in share"
    return s


# ------------------------------------------------------------------ warnings
def warnings(rows: list[dict], benchmarks: list[dict], heads: list[dict], settings: list[dict], info: dict) -> list[str]:
    out = []
    solve = [b for b in benchmarks if b["higher_is_better"]]  # an attack success rate of 0 is no failure
    scores = [p["value"] for b in solve for c in b["curves"] for p in c["points"]]
    if scores and all(v == 0 for v in scores):
        aside = f", {len(benchmarks) - len(solve)} lower-is-better benchmark(s) aside" if len(solve) < len(benchmarks) else ""
        out.append(f"Every score is 0 ({len(scores)} evaluations on {len(solve)} benchmark(s){aside}): no condition "
                   "solved anything, so no comparison in this report says which data is better. Check truncation, "
                   "max_tokens, the prompt template and the answer format before reading further.")
    else:
        for b in solve:
            vs = [p["value"] for c in b["curves"] for p in c["points"]]
            if vs and all(v == 0 for v in vs):
                out.append(f"Every score on {b['benchmark']} is 0 ({len(vs)} evaluations): its comparisons say nothing.")
    trunc: dict[str, list[float]] = {}
    for r in rows:
        if r["kind"] == "behaviour" and r["metric"] == "truncation_rate" and r["value"] is not None \
                and (r["run"], r["run_id"] or "") in info:
            trunc.setdefault(r["benchmark"], []).append(r["value"])
    by_budget: dict[str, list[tuple[str, float, int]]] = {}
    for bench, vs in sorted(trunc.items()):
        share = sum(vs) / len(vs)
        if share > TRUNCATION_WARN:
            mt = sorted({s["max_tokens"] for s in settings if s["benchmark"] == bench and s["max_tokens"] is not None})
            budget = f"max_tokens = {', '.join(str(x) for x in mt)}" if mt else "max_tokens (not recorded)"
            by_budget.setdefault(budget, []).append((bench, share, len(vs)))
    tail = ("(finish reason length). The scores measure the length budget as much as the answers: raise max_tokens "
            "or read them with care.")
    for budget, hits in by_budget.items():
        if len(hits) == 1:
            bench, share, n = hits[0]
            out.append(f"Most eval responses on {bench} are truncated: {share:.0f}% on average over {n} evaluations "
                       f"stop at {budget} {tail}")
        else:
            where = ", ".join(f"{b} ({share:.0f}% of {n} evaluations)" for b, share, n in hits)
            out.append(f"Most eval responses are truncated on {where}: they stop at {budget} {tail}")
    out += [note for h in heads for note in h["picked"]]
    for h in heads:
        if h["all_zero"]:
            continue  # said once above
        for c in h["comparisons"]:
            if c["inside_noise"]:
                out.append(f"{h['benchmark']}: {c['leader']} vs {c['other']} differ by {_pts(c['diff'])} points "
                           f"{_ci(c['ci_low'], c['ci_high'])} at step {c['step']}, inside run-to-run noise "
                           f"({c['noise_reason']}).")
    if heads and all(c["n_seeds"] == 1 for h in heads for c in h["conditions"]) and any(h["comparisons"] for h in heads):
        out.append("Each condition has one seed: CIs cover the sampling of problems only, not run-to-run training noise.")
    return out


# ------------------------------------------------------------------ everything
def findings(store, rows: list[dict], benchmarks: list[dict]) -> dict:
    runs = sorted({(c["run"], c["run_id"] or "") for b in benchmarks for c in b["curves"]}
                  | {(r["run"], r["run_id"] or "") for r in rows if r["kind"] == "behaviour" and r["step"] is not None})
    info = run_table(store, runs)
    settings = eval_settings(store, info)
    heads = headline(store, benchmarks, info)
    dose, dose_why = dose_response(heads, info)
    loss = [{"run": i["run"], "run_id": i["run_id"], "label": i["label"], "points": i["loss"]} for i in info.values() if i["loss"]]
    no_loss = [f"{i['label']}: {i['run_dir_status']}" + (f" ({i['run_dir']})" if i["run_dir"] else "")
               for i in info.values() if not i["loss"]]
    skipped = {}
    if not heads:
        skipped["headline"] = "no complete score with a training step in the evals table"
    if dose_why:
        skipped["dose_response"] = dose_why
    if not loss:
        skipped["loss"] = "no run folder with a metrics.jsonl is reachable from here" if info else "no training runs"
    return {
        "headline": heads, "behaviour_ci": behaviour_cis(store, rows, heads, info),
        "runs": [{k: v for k, v in i.items() if k not in ("loss", "knob_family")} | {"loss_points": len(i["loss"])}
                 for i in info.values()],
        "eval_settings": [{k: v for k, v in s.items() if k != "run_list"} for s in settings],
        "loss": loss, "loss_missing": no_loss, "dose_response": dose,
        "warnings": warnings(rows, benchmarks, heads, settings, info), "skipped": skipped,
    }
