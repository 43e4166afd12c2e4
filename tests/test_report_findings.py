"""The report's answer in words: the headline comparison (the same numbers as `curate evals compare`), CIs across
seeds, behaviour CIs, run settings and loss, the warnings, dose-response over the incorrect share, and figures
whose axes stay readable (all-equal values, crowded step ticks, legends beside the axes).

Stores are written directly (eval rows with per-problem scores and settings, the study's run records, run
folders with config.yaml and metrics.jsonl, mixture manifests): no model is trained.
Run: python -m pytest -q tests/test_report_findings.py
"""
from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import pytest
import yaml

from curate.evaluate import plots
from curate.evaluate.compare import compare
from curate.evaluate.findings import mean_ci, t975
from curate.evaluate.report import build_report
from curate.records import Problem, Sample
from curate.store import TraceStore
from curate.store.evals import plan_samples, write_evals
from curate.store.lineage import record_run
from tests.helpers import run_cli

N = 40
STEPS = (50, 100, 150)
SETTINGS = {"n": 1, "limit": N, "sampling": {"max_tokens": 256, "temperature": 0.6, "top_p": 0.95}}


def solved_set(k: int, seed: int) -> set[int]:
    """k problems out of N, a different subset per seed (so seed-paired differences vary)."""
    return {(i * 7 + 3 * seed) % N for i in range(k)}


def make_study(root: Path, conditions: dict, seeds=(0,), truncation: float = 5.0, folders: bool = True,
               lost_folder: str | None = None, samples: bool = False) -> TraceStore:
    """conditions: name -> {"solved": {step: k} or callable(seed, step) -> k, "share": incorrect_fraction,
    "strip": strip_thinking}. One run per condition and seed, recorded as a study would record it. With
    `samples`, the last step's evaluation also stores its N responses (hf backend, tokens 100 + 10 i, the
    first `truncation`% of them cut at max_tokens) and plans them, as `curate eval` does."""
    store = TraceStore(root / "store")
    rows = []
    problems = [Problem(source="countdown", domain="game", prompt=f"puzzle {i}", reference=i, split="eval") for i in range(N)]
    if samples:
        store.add_problems(problems)
    for name, c in conditions.items():
        manifest = root / "mixtures" / name / "manifest.json"
        manifest.parent.mkdir(parents=True)
        inc = round(100 * c.get("share", 0.0))
        manifest.write_text(json.dumps({
            "name": name, "rows": 100,
            "recipe": {"name": name, "seed": 0, "size": 100, "quality": {"incorrect_fraction": c.get("share", 0.0),
                                                                      "strip_thinking": c.get("strip", False)}},
            "composition": [{"status": "correct", "rows": 100 - inc}, {"status": "incorrect", "rows": inc}]}))
        for seed in seeds:
            run = f"{name}-tiny" + (f"-s{seed}" if len(seeds) > 1 else "")
            run_dir = root / "runs" / run
            if folders and run != lost_folder:
                run_dir.mkdir(parents=True)
                (run_dir / "config.yaml").write_text(yaml.safe_dump({
                    "model": {"name_or_path": "tiny"}, "data": {"path": str(manifest.parent / "dataset"), "max_length": 512},
                    "output_dir": str(run_dir),
                    "train": {"lr": 0.002, "max_steps": 150, "global_batch_size": 4, "seed": seed, "schedule": "cosine"}}))
                (run_dir / "metrics.jsonl").write_text("".join(
                    json.dumps({"step": s, "loss": 3.0 * math.exp(-s / 60) + 0.1 * seed, "lr": 0.002}) + "\n"
                    for s in range(1, 151)))
            record_run(store, {"run": run, "study": "t", "cell": run, "condition": name, "base_model": "tiny",
                               "seed": seed, "run_dir": str(run_dir), "manifest": str(manifest)})
            for step in STEPS:
                k = c["solved"](seed, step) if callable(c["solved"]) else c["solved"][step]
                solved = solved_set(k, seed)
                p = k / N
                hw = 196 * math.sqrt(max(p * (1 - p), 1e-9) / N)
                key = dict(run=run, checkpoint=str(run_dir / "checkpoints" / f"step-{step:06d}"), step=step,
                           suite="countdown", benchmark="countdown", settings_hash="s1", provenance="curate",
                           n_problems=N, n_samples=N, complete=True)
                rows.append({**key, "metric": "avg@1", "kind": "score", "value": 100 * p, "ci_low": 100 * p - hw,
                             "ci_high": 100 * p + hw, "details": {"settings": SETTINGS, "per_problem": {
                                 f"p{i:02d}": float(i in solved) for i in range(N)}}})
                if samples and step == STEPS[-1]:
                    cut = round(N * truncation / 100)
                    resp = [Sample(problem_id=pr.id, text=f"answer {i}", backend="hf", model=f"{run}/step-{step}",
                                   finish_reason="length" if i < cut else "stop", completion_tokens=100 + 10 * i)
                            for i, pr in enumerate(problems)]
                    store.add_samples(resp)
                    plan_samples(store, [{"sample_id": x.id, "problem_id": x.problem_id, "sample_index": 0,
                                          **{k: key[k] for k in ("run", "checkpoint", "step", "suite", "benchmark",
                                                                 "settings_hash")}} for x in resp])
                rows.append({**key, "metric": "mean_tokens", "kind": "behaviour", "value": 200.0 + 10 * seed})
                rows.append({**key, "metric": "truncation_rate", "kind": "behaviour", "value": truncation})
    write_evals(store, rows)
    return store


def report(store: TraceStore, out: Path) -> tuple[dict, str, str]:
    data = build_report(store, out)
    return data, (out / "report.md").read_text(), (out / "report.html").read_text()


THREE = {"verified": {"solved": {50: 10, 100: 20, 150: 30}},
         "incorrect-50": {"solved": {50: 8, 100: 12, 150: 16}, "share": 0.5},
         "thinking-removed": {"solved": {50: 9, 100: 18, 150: 28}, "strip": True}}


@pytest.fixture(scope="module")
def one_seed(tmp_path_factory):
    root = tmp_path_factory.mktemp("one-seed")
    store = make_study(root, THREE, lost_folder="thinking-removed-tiny")
    return store, *report(store, root / "out")


def test_headline_is_first_and_its_numbers_are_those_of_evals_compare(one_seed):
    store, data, md, html_text = one_seed
    [h] = data["headline"]
    assert (h["benchmark"], h["metric"], h["step"]) == ("countdown", "avg@1", 150)
    comps = {c["other"]: c for c in h["comparisons"]}
    assert {c["leader"] for c in h["comparisons"]} == {"verified"} and set(comps) == {"incorrect-50", "thinking-removed"}
    r = run_cli("evals", "compare", "incorrect-50-tiny", "verified-tiny", "--benchmark", "countdown",
                "--store", str(store.path), "--json")
    assert r.returncode == 0, r.stderr
    [stored] = [x for x in json.loads(r.stdout)["rows"] if x["step"] == 150]
    c = comps["incorrect-50"]
    assert (c["diff"], c["ci_low"], c["ci_high"]) == (stored["diff"], stored["ci_low"], stored["ci_high"])
    assert stored["diff"] == pytest.approx(35.0) and stored["method"] == "paired bootstrap"
    sentence = (f"verified beats incorrect-50 by {stored['diff']:.1f} points "
                f"[{stored['ci_low']:.1f}, {stored['ci_high']:.1f}] (paired bootstrap over 40 problems, 1 seed) at step 150")
    for text in (md, html_text):  # the raw Markdown shows the CI's brackets as they are, unescaped
        assert sentence in text
        assert text.index("Answer") < text.index("Score vs step")
    assert md.index("## Answer") < md.index("## Settings") < md.index("## Score vs step")


def test_settings_training_config_and_loss_come_from_the_store_and_run_folders(one_seed):
    _, data, md, html_text = one_seed
    [ev] = data["eval_settings"]
    assert (ev["problems"], ev["samples per problem"], ev["max_tokens"], ev["temperature"], ev["runs"]) == (N, 1, 256, 0.6, "all")
    runs = {r["run"]: r for r in data["runs"]}
    v = runs["verified-tiny"]
    assert v["train"]["lr"] == 0.002 and v["train"]["steps"] == 150 and v["train"]["batch"] == 4
    assert v["train"]["max_length"] == 512 and v["seed"] == 0 and v["loss_points"] == 150
    assert runs["thinking-removed-tiny"]["run_dir_status"] == "not reachable here"
    assert {r["run"] for r in data["loss"]} == {"verified-tiny", "incorrect-50-tiny"}
    assert (Path(data["store"]).parent / "out" / "figures" / "loss.png").is_file()
    for text in (md, html_text):
        assert "thinking-removed-tiny: not reachable here" in text
    assert "| verified-tiny | verified | tiny | 0 | 0.002 | 150 | 4 | 512 | cosine | reachable | 150 |" in md
    assert "| countdown | countdown | all | 40 | 1 | 256 | 0.6 | 0.95 | not recorded |" in md
    assert any("one seed" in w for w in data["warnings"])


def test_several_seeds_give_cis_across_seeds_and_noise_wording(tmp_path):
    conds = {
        "verified": {"solved": lambda seed, step: step // 5 + 4 * seed},          # 30, 34, 38 at 150
        "incorrect-50": {"solved": lambda seed, step: step // 10 + seed, "share": 0.5},  # 15, 16, 17
        "thinking-removed": {"solved": lambda seed, step: step // 5 + 2 - seed, "strip": True}}  # 32, 31, 30
    store = make_study(tmp_path, conds, seeds=(0, 1, 2))
    data, md, html_text = report(store, tmp_path / "out")
    [h] = data["headline"]
    by = {c["label"]: c for c in h["conditions"]}
    v = by["verified"]
    assert v["n_seeds"] == 3 and v["seeds"] == [0, 1, 2] and v["ci_over"] == "3 seeds"
    assert v["mean"] == pytest.approx(85.0) and v["spread"] == pytest.approx(20.0)
    hw = t975(2) * 10.0 / math.sqrt(3)  # sd of 75, 85, 95 is 10
    assert (v["ci_low"], v["ci_high"]) == pytest.approx((85 - hw, 100.0))  # clipped to the percent range
    comps = {c["other"]: c for c in h["comparisons"]}
    inc = comps["incorrect-50"]
    per_seed = [compare(store, f"incorrect-50-tiny-s{s}", f"verified-tiny-s{s}", benchmark="countdown")["rows"]
                for s in (0, 1, 2)]
    diffs = [next(r["diff"] for r in rows if r["step"] == 150) for rows in per_seed]
    assert [p["diff"] for p in inc["per_seed"]] == diffs
    assert (inc["diff"], inc["ci_low"], inc["ci_high"]) == pytest.approx(mean_ci(diffs, bounds=(-100, 100)))
    assert inc["inside_noise"] is False
    tr = comps["thinking-removed"]  # 7.5 points apart with a 20-point spread between verified's seeds
    assert tr["leader"] == "verified" and tr["inside_noise"] is True
    assert "smaller than the spread between seeds, 20.0 points" in tr["noise_reason"]
    for text in (md, html_text):
        assert "verified beats thinking-removed by 7.5 points" in text
        assert "inside run-to-run noise" in text
        assert "t-interval across seeds" in text
    beh = {(b["condition"], b["metric"]): b for b in data["behaviour_ci"]}
    tok = beh[("verified", "mean_tokens")]
    assert tok["mean"] == pytest.approx(210.0) and tok["ci_over"] == "3 seeds" and tok["ci_low"] < 210 < tok["ci_high"]


def test_every_score_zero_is_said_and_its_figure_keeps_a_percent_axis(tmp_path):
    zero = {name: {**c, "solved": {s: 0 for s in STEPS}} for name, c in THREE.items()}
    store = make_study(tmp_path, zero, folders=False)
    data, md, html_text = report(store, tmp_path / "out")
    for text in (md, html_text):
        assert "Every score is 0 (9 evaluations on 1 benchmark(s))" in text
        assert "countdown (avg@1, step 150): every condition scores 0 (3 runs), so they cannot be told apart" in text
    assert not any("inside run-to-run noise" in w for w in data["warnings"])  # the zero warning says it once
    assert "no run folder recorded" not in md and "not reachable here" in md
    [bench] = data["benchmarks"]
    with plots.style():
        fig = plots.score_figure(bench, list(STEPS), plots.colours([c["run"] for c in bench["curves"]]))
        fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.get_ylim() == (-2.0, 102.0)
    assert ax.yaxis.get_offset_text().get_text() == ""
    assert all("e" not in t.get_text() for t in ax.get_yticklabels())


def test_mostly_truncated_eval_responses_are_warned_about_with_max_tokens(tmp_path):
    store = make_study(tmp_path, THREE, truncation=92.0, folders=False)
    data, md, html_text = report(store, tmp_path / "out")
    [w] = [w for w in data["warnings"] if "truncated" in w]
    assert w.startswith("Most eval responses on countdown are truncated: 92% on average over 9 evaluations "
                        "stop at max_tokens = 256 (finish reason length)")
    assert w in md and w in html_text.replace("&#x27;", "'")
    quiet = make_study(tmp_path / "quiet", THREE, truncation=10.0, folders=False)
    assert not any("truncated" in w for w in build_report(quiet, tmp_path / "quiet" / "out")["warnings"])


def test_dose_response_over_the_incorrect_share(tmp_path):
    sweep = {f"sweep-{x:g}": {"solved": {s: round(s / 150 * (32 - 24 * x)) for s in STEPS}, "share": x}
             for x in (0, 0.25, 0.5, 0.75, 1)}
    sweep["thinking-removed"] = {"solved": {50: 9, 100: 18, 150: 28}, "strip": True}  # another knob: not on the line
    store = make_study(tmp_path, sweep, folders=False)
    data, md, html_text = report(store, tmp_path / "out")
    [d] = data["dose_response"]
    assert d["knob"] == "quality.incorrect_fraction" and d["shares"] == [0, 0.25, 0.5, 0.75, 1]
    assert "thinking-removed" not in {p["condition"] for p in d["points"]}
    assert d["slope"] == pytest.approx(-60.0) and d["monotone"] == "falls"
    assert [p["actual_share"] for p in d["points"]] == [0, 0.25, 0.5, 0.75, 1]
    assert (tmp_path / "out" / "figures" / "dose_response.png").is_file()
    for text in (md, html_text):
        assert "Dose-response" in text
        assert "-6.0 points per +0.1 share" in text and "more incorrect traces make it worse" in text
    assert "![dose-response](figures/dose_response.png)" in md
    assert "dose_response" not in data["skipped"]


def test_one_seed_behaviour_cis_come_from_the_eval_responses(tmp_path):
    store = make_study(tmp_path, {"verified": THREE["verified"], "incorrect-50": THREE["incorrect-50"]},
                       truncation=25.0, folders=False, samples=True)
    data, _, _ = report(store, tmp_path / "out")
    beh = {(b["condition"], b["metric"]): b for b in data["behaviour_ci"]}
    tok, cut = beh[("verified", "mean_tokens")], beh[("verified", "truncation_rate")]
    assert tok["ci_over"] == "40 responses" and cut["ci_over"] == "40 responses"
    sd = math.sqrt(sum((10 * i - 195) ** 2 for i in range(N)) / (N - 1))  # tokens 100 + 10 i
    assert (tok["ci_low"], tok["ci_high"]) == pytest.approx((200 - 1.96 * sd / math.sqrt(N), 200 + 1.96 * sd / math.sqrt(N)))
    assert cut["mean"] == 25.0 and 13 < cut["ci_low"] < 25 < cut["ci_high"] < 41  # Wilson interval of 10 in 40
    assert data["eval_settings"][0]["backend"] == "hf"


def test_dose_response_left_out_names_the_other_fields_that_differ(tmp_path):
    conds = {"a": {"solved": {50: 9, 100: 18, 150: 28}, "share": 0.0},
             "b": {"solved": {50: 9, 100: 18, 150: 20}, "share": 0.5},
             "c": {"solved": {50: 9, 100: 18, 150: 10}, "share": 1.0, "strip": True}}
    store = make_study(tmp_path, conds, folders=False)
    data, md, _ = report(store, tmp_path / "out")
    assert data["dose_response"] == []
    assert data["skipped"]["dose_response"].endswith("the conditions with 3 shares also differ in quality.strip_thinking")
    assert "_Left out: no three or more conditions differing only in quality.incorrect_fraction" in md


def test_run_names_are_escaped_in_the_answer(tmp_path):
    conds = {"<b>v</b>": THREE["verified"], "x&y": THREE["incorrect-50"]}
    store = make_study(tmp_path, conds, folders=False)
    _, _, html_text = report(store, tmp_path / "out")
    assert "<b>v</b>" not in html_text and "&lt;b&gt;v&lt;/b&gt; beats x&amp;y by" in html_text


# ------------------------------------------------------------------ readable figures
def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_step_ticks_do_not_overlap_and_legends_stay_off_the_axis_labels(tmp_path):
    steps = [0, 10, 20, 40, 80, 160, 320, 480, 640]
    curves = [{"run": f"run-{i}", "label": f"a-rather-long-condition-name-{i}", "metric": "avg@3", "higher_is_better": True,
               "points": [{"step": s, "value": 40 + i + s / 20, "ci_low": None, "ci_high": None} for s in steps],
               "dynamics": {"base": 40.0 + i, "dip": False}} for i in range(3)]
    bench = {"benchmark": "math500", "metrics": ["avg@3"], "higher_is_better": True, "curves": curves}
    palette = plots.colours([c["run"] for c in curves])
    dose = [{"benchmark": "countdown", "metric": "avg@1", "step": 150, "knob": "quality.incorrect_fraction", "model": "tiny",
             "points": [{"share": x, "mean": 50 - 20 * x, "ci_low": 45 - 20 * x, "ci_high": 55 - 20 * x} for x in (0, .5, 1)],
             "slope": -20.0, "intercept": 50.0}]
    loss = [{"run": "run-0", "points": [{"step": s, "loss": 2.0} for s in range(1, 50)]}]  # all equal
    with plots.style():
        figs = [plots.score_figure(bench, steps, palette), plots.dose_figure(dose), plots.loss_figure(loss, palette),
                plots.behaviour_figure([{"run": "run-0", "points": [{"step": s, "mean_tokens": 100.0, "truncation_rate": 0.0}
                                                                    for s in steps]}], steps, palette)]
        for fig in figs:
            fig.canvas.draw()
            plots.thin_xticklabels(fig)
            r = fig.canvas.get_renderer()
            labels = [t for ax in fig.axes for t in (ax.xaxis.label, ax.yaxis.label) if t.get_text()]
            legends = [lg for lg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if lg is not None]
            for lg in legends:
                box = lg.get_window_extent(r)
                assert not any(_overlap(box, t.get_window_extent(r)) for t in labels), fig.axes[0].get_title()
            for ax in fig.axes:
                shown = [t.get_window_extent(r) for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
                assert all(a.x1 <= b.x0 for a, b in itertools.pairwise(shown)), [t.get_text() for t in ax.get_xticklabels()]
    score_labels = [t.get_text() for t in figs[0].axes[0].get_xticklabels() if t.get_visible()]
    assert score_labels[-1] == "640" and "480640" not in "".join(score_labels)
    with plots.style():  # what the saved files show: 480 sits too close to 640 on the log axis
        plots.save(plots.score_figure(bench, steps, palette), tmp_path, "score")
    texts = re.findall(r">([^<>]+)</text>", (tmp_path / "score.svg").read_text())
    assert "640" in texts and "320" in texts and "480" not in texts
    assert figs[2].axes[0].get_ylim()[1] - figs[2].axes[0].get_ylim()[0] >= 1.0  # a flat loss is not a 1e-17 axis
    assert figs[3].axes[1].get_ylim() == (-2.0, 102.0)  # truncation 0% everywhere: the whole percent axis
