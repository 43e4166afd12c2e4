"""`curate report`: curves, dips and data composition from a store (and a study's mixtures) in one folder.

    build_report(store, out, study=None, mixtures=()) -> dict   (the numbers; also written as report.json)

OUT gets report.html (self-contained: figures embedded as data URIs, no scripts, opens offline from a file),
report.md (the summary in Markdown, linking the figure files), report.json and figures/*.png|svg. Sections:
the answer in words with its warnings, per-condition CIs and behaviour CIs (computed in findings.py),
dose-response over the incorrect share, eval and training settings of every run, training loss, score vs step
per benchmark (dip and recovery marked), response length and truncation vs step, final and best scores with
the dynamics summary and ranking flips, mixture composition from manifest.json files (a study's
DIR/mixtures/*/, or --mixtures folders), verdict rates per source and teacher. A section without data is
left out with one line saying why. Two training runs sharing a name (cells of two studies) are one condition in
the answer (the run id it compared, see findings.py) and two labelled entries, `name [run id8]`, wherever every
run is listed. This module gathers the numbers and draws the figures; report_pages.py writes the two pages
(names from data print as text in both).
Test: tests/test_report.py, tests/test_report_findings.py; benchmark: benchmarks/report_build.py.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Iterable

from curate.errors import InputError
from curate.evaluate import dynamics as dyn
from curate.evaluate.findings import findings
from curate.evaluate.run_info import run_label
from curate.evaluate.report_pages import STATUSES, markdown, render_html
from curate.evaluate.results import headline_rank
from curate.store import report_queries as rq

BEHAVIOUR = ("mean_tokens", "truncation_rate")


# ------------------------------------------------------------------ collecting the numbers
def score_curves(rows: list[dict]) -> list[dict]:
    """Per benchmark, one curve per (run, suite, settings) in its headline metric, with its dynamics and flips."""
    groups: dict[tuple, dict] = {}
    for r in rows:
        if r["kind"] != "score":
            continue
        # one curve per training run: two runs sharing a name (cells of two studies) have different run ids
        key = (r["benchmark"], r["run"], r.get("run_id") or "", r["suite"], r["settings_hash"])
        groups.setdefault(key, {}).setdefault(r["metric"], []).append(r)
    benches: dict[str, list[dict]] = {}
    for (bench, run, run_id, suite, settings), by_metric in sorted(groups.items()):
        metric = min(by_metric, key=headline_rank)
        points, incomplete, seen = [], 0, set()
        for r in by_metric[metric]:  # newest first within a step
            if r["step"] is None or r["step"] in seen:
                continue
            seen.add(r["step"])
            if r["value"] is None or not r["complete"]:
                incomplete += 1
                continue
            points.append({"step": r["step"], "value": r["value"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]})
        points.sort(key=lambda p: p["step"])
        if not points:
            continue
        higher = metric != "asr"
        benches.setdefault(bench, []).append({
            "run": run, "run_id": run_id or None, "suite": suite, "settings_hash": settings, "metric": metric, "higher_is_better": higher,
            "provenance": by_metric[metric][0]["provenance"], "incomplete_points": incomplete, "points": points,
            "evaluated_at": str(max(r["created_at"] for r in by_metric[metric])),
            "dynamics": dyn.dynamics(points, higher_is_better=higher).to_dict(),
        })
    out = []
    for bench, curves in sorted(benches.items()):
        per_run: dict[str, list[dict]] = {}
        for c in curves:
            per_run.setdefault(c["run"], []).append(c)
        for c in curves:  # a run with several curves: tell them apart by suite, and by settings only where needed
            same = per_run[c["run"]]
            if len(same) == 1:
                c["label"] = c["run"]
            elif len({o["run_id"] for o in same}) > 1:
                mine = [o for o in same if o["run_id"] == c["run_id"]]
                c["label"] = run_label(c["run"], c["run_id"]) + (
                    "" if len(mine) == 1 else f" [{c['suite']}]" if sum(o["suite"] == c["suite"] for o in mine) == 1
                    else f" [{c['suite']} {c['settings_hash'][:8]}]")
            elif sum(o["suite"] == c["suite"] for o in same) == 1:
                c["label"] = f"{c['run']} [{c['suite']}]"
            else:
                c["label"] = f"{c['run']} [{c['suite']} {c['settings_hash'][:8]}]"
        higher = all(c["higher_is_better"] for c in curves)
        flips = []
        for a, b in itertools.combinations(curves, 2):
            if a["metric"] != b["metric"]:
                continue
            f = dyn.ranking_flip(a["points"], b["points"], names=(a["label"], b["label"]), higher_is_better=higher)
            if f.flipped:
                flips.append({"a": a["label"], "b": b["label"], **f.to_dict()})
        out.append({"benchmark": bench, "metrics": sorted({c["metric"] for c in curves}), "higher_is_better": higher,
                    "curves": curves, "flips": flips})
    return out


def unstepped(rows: list[dict]) -> list[dict]:
    """Score rows without a training step (a hub model or endpoint): a table row each, no curve."""
    return [{"run": r["run"], "suite": r["suite"], "benchmark": r["benchmark"], "metric": r["metric"],
             "value": r["value"], "ci_low": r["ci_low"], "ci_high": r["ci_high"], "n_problems": r["n_problems"]}
            for r in rows if r["kind"] == "score" and r["step"] is None and r["value"] is not None and r["complete"]]


def behaviour_curves(rows: list[dict]) -> list[dict]:
    """Per training run (name and run id) and step: mean response tokens and truncation rate, averaged over the
    benchmarks that report them; labelled with the run id where a name stands for several runs."""
    acc: dict[tuple[str, str], dict[int, dict[str, list[float]]]] = {}
    for r in rows:
        if r["kind"] != "behaviour" or r["metric"] not in BEHAVIOUR or r["value"] is None or r["step"] is None:
            continue
        acc.setdefault((r["run"], r["run_id"] or ""), {}).setdefault(r["step"], {}).setdefault(r["metric"], []).append(r["value"])
    ids: dict[str, int] = {}
    for run, _ in acc:
        ids[run] = ids.get(run, 0) + 1
    out = []
    for (run, run_id), steps in sorted(acc.items()):
        pts = [{"step": s, **{m: round(sum(v) / len(v), 2) if (v := vals.get(m)) else None for m in BEHAVIOUR}}
               for s, vals in sorted(steps.items())]
        out.append({"run": run, "run_id": run_id or None, "label": run_label(run, run_id) if ids[run] > 1 else run,
                    "points": pts})
    return out


def summary_table(benches: list[dict]) -> list[dict]:
    rows = []
    for b in benches:
        for c in b["curves"]:
            d = c["dynamics"]
            rows.append({
                "condition": c["label"], "benchmark": b["benchmark"], "metric": c["metric"], "base": d["base"],
                "final_step": d["last_step"], "final": d["final"], "final_gain": d["final_gain"],
                "best_step": d["best_step"], "best": d["best"], "dip_depth": d["dip_depth"], "min_step": d["min_step"],
                "dip_significant": d["dip_significant"], "recovery": d["recovery"],
            })
    return rows


def find_mixtures(study: Path | None, folders: Iterable[Path]) -> list[Path]:
    """manifest.json files: a study's DIR/mixtures/*/, and each --mixtures folder (a mixture or a folder of them)."""
    found: list[Path] = []
    if study is not None:
        if not study.is_dir():
            raise InputError(f"study directory {study} does not exist")
        found += sorted((study / "mixtures").glob("*/manifest.json"))
    for f in folders:
        f = Path(f)
        here = [f / "manifest.json"] if (f / "manifest.json").is_file() else sorted(f.glob("*/manifest.json"))
        if not here:
            raise InputError(f"--mixtures {f}: no manifest.json in it or its sub-folders",
                             hint="pass the --out folder of `curate mix`")
        found += here
    return list(dict.fromkeys(p.resolve() for p in found))


def mixture_summary(path: Path) -> dict:
    """Composition of one mixture from its manifest: shares by status, thinking share, lengths, length matching."""
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
        rows = int(m["rows"])
        comp = m["composition"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path}: not a readable mixture manifest ({type(e).__name__}: {e})") from None
    by_status: dict[str, int] = {}
    thinking = 0
    for c in comp:
        by_status[c["status"]] = by_status.get(c["status"], 0) + c["rows"]
        t = c.get("transform") or "none"
        thinking += c["rows"] if "strip_thinking" not in t and "reference_solution" not in t else 0
    tok = m.get("tokens", {})
    inc = m.get("incorrect") or {}
    chars = tok.get("response_chars_by_status", {})
    med = {s: v.get("median") for s, v in chars.items() if v.get("n")}
    return {
        "name": m.get("name", path.parent.name), "path": str(path.parent), "rows": rows,
        "recipe_hash": m.get("recipe_hash"),
        "status_shares": {s: round(n / rows, 4) if rows else 0.0 for s, n in sorted(by_status.items())},
        "incorrect_share": round(by_status.get("incorrect", 0) / rows, 4) if rows else None,
        "thinking_share": round(thinking / rows, 4) if rows else None,
        "length": {"response_chars": tok.get("response_chars", {}), "completion_tokens": tok.get("completion_tokens", {})},
        "length_by_status": chars,
        "length_matching": {
            "replaced": inc.get("replaced", 0), "same_length_bucket": inc.get("same_length_bucket"),
            "same_bucket_share": round(inc["same_length_bucket"] / inc["replaced"], 4) if inc.get("replaced") else None,
            "median_chars_incorrect_over_correct": round(med["incorrect"] / med["correct"], 3)
            if med.get("incorrect") and med.get("correct") else None,
        },
    }


def collect(store, study: Path | None = None, mixtures: Iterable[Path] = ()) -> dict:
    """Every number the report shows, as plain data (this is what --json prints)."""
    rows = rq.eval_curves(store)
    data: dict = {"store": str(store.path), "study": str(study) if study else None, "skipped": {}}
    data["benchmarks"] = score_curves(rows)
    data["unstepped"] = unstepped(rows)
    if not data["benchmarks"]:
        data["skipped"]["scores"] = ("no score rows in the evals table" if not rows else
                                     "no complete score with a training step in the evals table")
    data["behaviour"] = behaviour_curves(rows)
    if not data["behaviour"]:
        data["skipped"]["behaviour"] = ("no mean_tokens or truncation_rate rows with a training step in the evals table "
                                        "(imported results carry none)")
    data["table"] = summary_table(data["benchmarks"])
    found = findings(store, rows, data["benchmarks"])
    data["skipped"].update(found.pop("skipped"))
    data.update(found)
    paths = find_mixtures(study, mixtures)
    data["mixtures"] = [mixture_summary(p) for p in paths]
    if not paths:
        data["skipped"]["mixtures"] = ("no manifest.json under the study's mixtures/ folder" if study
                                       else "no mixtures given (pass --study DIR or --mixtures DIR)")
    data["verdicts"] = []
    if rq.has_samples(store):
        for r in rq.verdict_rates(store):
            r["rates"] = {s: round(100.0 * r[s] / r["traces"], 2) for s in STATUSES}
            data["verdicts"].append(r)
    else:
        data["skipped"]["verdicts"] = "the store holds no traces besides evaluation samples"
    return data


# ------------------------------------------------------------------ writing
def build_report(store, out: str | Path, study: str | Path | None = None, mixtures: Iterable[str | Path] = ()) -> dict:
    """Collect, draw and write the report into `out`; returns the data with the written files listed."""
    from curate.evaluate import plots

    plots.require_matplotlib()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a directory")
    data = collect(store, Path(study) if study else None, [Path(m) for m in mixtures])
    figdir = out / "figures"
    figures: dict[str, bytes] = {}
    steps = sorted({p["step"] for b in data["benchmarks"] for c in b["curves"] for p in c["points"]}
                   | {p["step"] for r in data["behaviour"] for p in r["points"]})
    palette = plots.colours(list({c["run"] for b in data["benchmarks"] for c in b["curves"]}
                                 | {r["run"] for r in data["behaviour"]} | {r["run"] for r in data["loss"]}))
    with plots.style():
        if data["dose_response"]:
            figures["dose_response"] = plots.save(plots.dose_figure(data["dose_response"]), figdir, "dose_response")
        for b in data["benchmarks"]:
            b["figure"] = f"score_{_slug(b['benchmark'])}"
            figures[b["figure"]] = plots.save(plots.score_figure(b, steps, palette), figdir, b["figure"])
        if data["behaviour"]:
            figures["behaviour"] = plots.save(plots.behaviour_figure(data["behaviour"], steps, palette), figdir, "behaviour")
        if data["loss"]:
            figures["loss"] = plots.save(plots.loss_figure(data["loss"], palette), figdir, "loss")
        if data["mixtures"]:
            figures["mixtures"] = plots.save(plots.mixture_figure(data["mixtures"]), figdir, "mixtures")
        if data["verdicts"]:
            figures["verdicts"] = plots.save(plots.verdict_figure(data["verdicts"][:40], STATUSES), figdir, "verdicts")
    data["files"] = ["report.html", "report.md", "report.json"] + [f"figures/{s}.{e}" for s in figures for e in ("png", "svg")]
    (out / "report.json").write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    (out / "report.md").write_text(markdown(data), encoding="utf-8")
    (out / "report.html").write_text(render_html(data, figures), encoding="utf-8")
    return data


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s) or "_"


