"""`curate report` from a fixture store (published curves, evaluated conditions with CIs, per-problem scores and
behaviour rows, traces with verdicts, two real mixtures in a study folder), the headless-browser check, and
`curate evals compare` with its paired bootstrap against hand-computed cases.

The browser test needs Chromium (`apt-get install -y chromium`) and is skipped only when none is found.
Run: python -m pytest -q tests/test_report.py
"""
from __future__ import annotations

import base64
import json
import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

import fixture_store
from curate.evaluate.compare import paired_bootstrap, unpaired
from curate.evaluate.results import import_results
from curate.store.evals import plan_samples, write_evals
from tests.browser import find_browser, render
from tests.helpers import ROOT, run_cli

PAPER = Path(__file__).parent / "fixtures" / "evals" / "paper_curves.csv"
N = 40
# Problems solved (out of N) per step: b dips below base at 10-20, then overtakes a (a ranking flip).
SOLVED = {"cond-a": {0: 20, 10: 24, 20: 22, 40: 26, 80: 28}, "cond-b": {0: 20, 10: 14, 20: 18, 40: 27, 80: 34}}
TOKENS = {"cond-a": {0: 900, 10: 1500, 20: 1400, 40: 1200, 80: 1100}, "cond-b": {0: 900, 10: 3000, 20: 2600, 40: 1500, 80: 1300}}


def eval_rows() -> list[dict]:
    rows = []
    for run, by_step in SOLVED.items():
        for step, k in by_step.items():
            p = k / N
            hw = 196 * math.sqrt(p * (1 - p) / N)
            key = dict(run=run, checkpoint=f"{run}/step-{step}", step=step, suite="countdown", benchmark="countdown",
                       settings_hash="s1", provenance="curate", n_problems=N, n_samples=N, complete=True)
            rows.append({**key, "metric": "avg@1", "kind": "score", "value": 100 * p, "ci_low": 100 * p - hw,
                         "ci_high": 100 * p + hw, "details": {"per_problem": {f"p{i:02d}": float(i < k) for i in range(N)}}})
            rows.append({**key, "metric": "mean_tokens", "kind": "behaviour", "value": TOKENS[run][step]})
            rows.append({**key, "metric": "truncation_rate", "kind": "behaviour", "value": TOKENS[run][step] / 200})
    # a hub model evaluated outside a training run: no step, so a table row and no curve
    rows.append(dict(run="hub-model", checkpoint="org/model", step=None, suite="countdown", benchmark="countdown",
                     settings_hash="s1", provenance="curate", metric="avg@1", kind="score", value=61.0, complete=True))
    return rows


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from curate.mix import mix_recipe
    from curate.mix.recipe import validate_recipe

    root = tmp_path_factory.mktemp("report")
    store = fixture_store.build(root / "store")
    import_results(store, PAPER)
    write_evals(store, eval_rows())
    # two countdown traces (one correct, one incorrect) were sampled by an evaluation: not training data
    planned = store.query("""SELECT s.id AS sample_id, s.problem_id, s.sample_index FROM traces s
        WHERE source = 'countdown' QUALIFY row_number() OVER (PARTITION BY status ORDER BY s.id) = 1""").to_pylist()
    plan_samples(store, [{**p, "run": "cond-a", "checkpoint": "c", "step": 0, "suite": "countdown",
                          "benchmark": "countdown", "settings_hash": "s1"} for p in planned])
    study = root / "study"
    base = {"name": "t", "seed": 7, "size": 20, "filters": {"no_truncation": True},
            "sources": [{"name": "qwen", "where": "domain = 'math' AND model ILIKE '%qwen3-32b%'"}]}
    mix_recipe(validate_recipe({**base, "name": "half-incorrect", "quality": {"incorrect_fraction": 0.5}}), store,
               study / "mixtures" / "half-incorrect")
    mix_recipe(validate_recipe({**base, "name": "no-cot", "quality": {"strip_thinking": True}}), store,
               study / "mixtures" / "no-cot")
    out = root / "out"
    r = run_cli("report", "--store", str(store.path), "--out", str(out), "--study", str(study), "--json")
    assert r.returncode == 0, r.stderr
    return {"store": store, "study": study, "out": out, "data": json.loads(r.stdout)}


class Page(HTMLParser):
    """Collects images, external references and unclosed tags; raises on mismatched nesting."""

    VOID = {"meta", "img", "br", "hr", "link", "input", "source", "area", "base", "col", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.images: list[str] = []
        self.external: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        if tag == "script":
            self.scripts += 1
        for k in ("src", "href"):
            if a.get(k) and not a[k].startswith(("data:", "#")):
                self.external.append(a[k])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()


def parse(html_text: str) -> Page:
    p = Page()
    p.feed(html_text)
    p.close()
    assert p.stack == [], f"unclosed tags: {p.stack}"
    return p


def not_blank_png(data: bytes) -> None:
    import io

    import numpy as np
    from matplotlib import image

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    px = image.imread(io.BytesIO(data), format="png")
    assert px.shape[0] > 100 and px.shape[1] > 100
    rgb = (px[..., :3] * 255).astype(np.int64)
    assert rgb.std() > 10, "image is (nearly) a single colour"
    assert len(np.unique(rgb[..., 0] * 65536 + rgb[..., 1] * 256 + rgb[..., 2])) > 20


def test_report_html_parses_embeds_every_image_and_references_no_file(built):
    page = parse((built["out"] / "report.html").read_text(encoding="utf-8"))
    # nothing is loaded from outside the file; the only links out open the local viewer's eval explorer
    assert all(u.startswith("http://127.0.0.1:8300/evals/grid?") for u in page.external) and page.scripts == 0
    # countdown, gpqa_diamond, math500, behaviour, mixtures, verdicts
    assert len(page.images) == 6
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        not_blank_png(base64.b64decode(src.split(",", 1)[1]))


def test_figures_exist_as_png_and_svg_and_are_not_blank(built):
    figs = built["out"] / "figures"
    stems = {"score_countdown", "score_gpqa_diamond", "score_math500", "behaviour", "mixtures", "verdicts"}
    assert {p.stem for p in figs.glob("*.png")} == stems == {p.stem for p in figs.glob("*.svg")}
    for stem in stems:
        not_blank_png((figs / f"{stem}.png").read_bytes())
        root = ET.parse(figs / f"{stem}.svg").getroot()
        assert root.tag.endswith("svg") and len(list(root.iter())) > 50


def test_json_numbers_dynamics_flips_mixtures_and_verdicts(built):
    data = built["data"]
    assert data == json.loads((built["out"] / "report.json").read_text())
    assert set(data["skipped"]) == {"dose_response", "loss"}  # no sweep, no run folders: said, not drawn
    row = {(r["condition"], r["benchmark"]): r for r in data["table"]}
    r4 = row[("qwen3-4b-math-cot", "math500")]
    assert (r4["min_step"], r4["recovery"], r4["final_gain"], r4["best_step"]) == (20, "step 40", pytest.approx(15.4), 480)
    assert row[("qwen3-1.7b-math-cot", "gpqa_diamond")]["recovery"] == "never"
    b = row[("cond-b", "countdown")]
    assert (b["base"], b["min_step"], b["dip_depth"], b["recovery"]) == (50.0, 10, 15.0, "step 40")
    assert b["dip_significant"] is False  # 15 points on 40 problems is within the noise
    [countdown] = [x for x in data["benchmarks"] if x["benchmark"] == "countdown"]
    # cond-a leads by 25 at step 10, cond-b by 15 at step 80: on 40 problems both are inside the CIs
    # (half-widths about 14 points each), so the order is a tie at step 80 and nothing flips
    assert countdown["flips"] == []
    beh = {r["run"]: r["points"] for r in data["behaviour"]}
    assert beh["cond-b"][1] == {"step": 10, "mean_tokens": 3000.0, "truncation_rate": 15.0}
    mixes = {m["name"]: m for m in data["mixtures"]}
    assert mixes["half-incorrect"]["incorrect_share"] == 0.5 and mixes["half-incorrect"]["thinking_share"] == 1.0
    assert mixes["half-incorrect"]["length_matching"]["same_bucket_share"] == 1.0
    assert mixes["no-cot"]["thinking_share"] == 0.0 and mixes["no-cot"]["incorrect_share"] == 0.0
    rates = {(v["source"], v["model"]): v for v in data["verdicts"]}
    cd = rates[("countdown", fixture_store.QWEN)]
    assert cd["rates"]["correct"] == 50.0 and cd["rates"]["incorrect"] == 50.0 and cd["traces"] == 22
    assert data["unstepped"] == [{"run": "hub-model", "suite": "countdown", "benchmark": "countdown", "metric": "avg@1",
                                  "value": 61.0, "ci_low": None, "ci_high": None, "n_problems": None}]


def test_markdown_and_html_carry_the_table_and_the_flip_warning(built):
    md = (built["out"] / "report.md").read_text()
    html_text = (built["out"] / "report.html").read_text()
    assert "| qwen3-4b-math-cot | math500 | avg@3 | 70.8 | 640 | 86.2 | 15.4 | 480 | 87.1 | 7.9 | 20 |" in md
    assert "![math500](figures/score_math500.png)" in md
    assert "| hub-model | countdown | countdown | avg@1 | 61.0 |" in md
    # evaluated runs link to the viewer's eval explorer; imported (published) curves have no answers to show
    assert "http://127.0.0.1:8300/evals/grid?run=cond-a&amp;benchmark=countdown" in html_text
    assert "(http://127.0.0.1:8300/evals/grid?run=cond-a&benchmark=countdown)" in md
    assert "evals/grid?run=qwen3-4b-math-cot" not in md
    # a CI reads [a, b] in the raw Markdown (no backslashes) and renders as the same text, not as a link
    from markdown_it import MarkdownIt

    cis = re.findall(r"\[\d+\.\d, \d+\.\d\]", md)
    assert cis and "\\[" not in md and "\\]" not in md
    page = MarkdownIt("commonmark").enable("table").render(md)
    assert all(ci in page for ci in cis) and page.count("<a href") == md.count("](http")
    for text in (md, html_text):
        assert "cond-a led by" not in text  # an order inside the noise is no flip
        assert text.count("Left out") == 2  # dose-response and training loss only


def test_a_flip_is_reported_and_one_without_cis_says_it_was_not_tested(tmp_path):
    from curate.evaluate.report import build_report
    from curate.store import TraceStore

    st = TraceStore(tmp_path / "store")
    curves = {"a": {0: 50.0, 10: 60.0, 80: 40.0}, "b": {0: 50.0, 10: 40.0, 80: 60.0}}
    write_evals(st, [dict(run=run, step=s, suite="x", benchmark="bench", metric="avg@1", value=v, settings_hash="h",
                          provenance="curate", **({"ci_low": v - 1.0, "ci_high": v + 1.0} if run != "c" else {}))
                     for run, c in curves.items() for s, v in c.items()])
    data = build_report(st, tmp_path / "out")
    [flip] = data["benchmarks"][0]["flips"]
    assert flip["tested"] and (flip["early_step"], flip["leader_early"], flip["leader_last"]) == (10, "a", "b")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "bench: at step 10 a led by 20.0; at step 80 b leads by 20.0\n" in md
    write_evals(st, [dict(run="c", step=s, suite="x", benchmark="bench", metric="avg@1", value=v, settings_hash="h",
                          provenance="imported:c.csv") for s, v in {0: 50.0, 10: 70.0, 80: 45.0}.items()])
    build_report(st, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "at step 10 c led by 30.0; at step 80 b leads by 15.0 (no CIs: not tested against the noise)" in md


def test_sections_without_data_are_left_out_with_a_reason(tmp_path, cli):
    store = tmp_path / "store"
    assert cli("evals", "import", str(PAPER), "--store", str(store)).returncode == 0
    r = cli("report", "--store", str(store), "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert "left out verdicts: the store holds no traces besides evaluation samples" in r.stdout
    page = parse((tmp_path / "out" / "report.html").read_text())
    assert len(page.images) == 2  # gpqa and math500 only: no empty axes for the missing sections
    md = (tmp_path / "out" / "report.md").read_text()
    assert "_Left out: no mean_tokens or truncation_rate rows with a training step" in md and "_Left out: no mixtures given" in md
    assert sorted(p.name for p in (tmp_path / "out" / "figures").iterdir()) == [
        "score_gpqa_diamond.png", "score_gpqa_diamond.svg", "score_math500.png", "score_math500.svg"]


def test_bad_inputs_are_one_line_errors(tmp_path, cli):
    store = tmp_path / "store"
    cli("evals", "import", str(PAPER), "--store", str(store))
    r = cli("report", "--store", str(store), "--out", str(tmp_path / "o"), "--mixtures", str(tmp_path))
    assert r.returncode == 2 and "no manifest.json" in r.stderr and "Traceback" not in r.stderr
    r = cli("report", "--store", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "no store at" in r.stderr


def test_missing_matplotlib_names_the_extra(tmp_path, cli):
    blocker = tmp_path / "blocker" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('blocked for this test')\n")
    store = tmp_path / "store"
    cli("evals", "import", str(PAPER), "--store", str(store))
    r = cli("report", "--store", str(store), "--out", str(tmp_path / "o"), env={"PYTHONPATH": f"{blocker.parent}:{ROOT}"})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: curate report needs matplotlib: install curate's `report` extra, or pip install 'matplotlib>=3.7'"]


@pytest.mark.skipif(find_browser() is None, reason="no Chromium/Chrome binary (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium_without_console_errors(built, tmp_path):
    seen = render(find_browser(), built["out"] / "report.html", tmp_path / "profile")
    assert seen["errors"] == []
    assert seen["title"] == "curate evaluation report"
    assert len(seen["images"]) == 6
    for img in seen["images"]:
        assert img["complete"] and img["width"] > 300 and img["height"] > 150 and img["shown"] > 100, img
    not_blank_png(seen["screenshot"])


# ------------------------------------------------------------------ compare
def test_paired_bootstrap_two_problems_by_hand():
    # differences 0 and 100 points: resampled means are 0 (1/4), 50 (1/2), 100 (1/4)
    r = paired_bootstrap({"x": 0.0, "y": 0.0}, {"x": 0.0, "y": 1.0}, resamples=20000, seed=1)
    assert r["diff"] == 50.0 and r["n_problems"] == 2
    assert (r["ci_low"], r["ci_high"]) == (0.0, 100.0)
    assert r["p_value"] == pytest.approx(0.5, abs=0.03)  # twice P(mean <= 0) = 2 * 1/4


def test_paired_bootstrap_removes_shared_difficulty_that_unpaired_cis_keep():
    a = {f"p{i}": float(i < 20) for i in range(40)}
    b = {f"p{i}": float(i < 24) for i in range(40)}  # b solves everything a does, plus 4 more
    r = paired_bootstrap(a, {**b, "extra": 1.0})
    assert r["diff"] == pytest.approx(10.0) and r["only_b"] == 1 and r["n_problems"] == 40
    assert r["ci_low"] > 0 and r["p_value"] < 0.05  # every difference is >= 0: a real effect
    hw = lambda p: 196 * math.sqrt(p * (1 - p) / 40)  # noqa: E731
    u = unpaired(50.0, 60.0, (50 - hw(.5), 50 + hw(.5)), (60 - hw(.6), 60 + hw(.6)))
    assert u["ci_low"] < 0  # the same data, unpaired: indistinguishable from noise
    same = paired_bootstrap({"p": 0.2, "q": 0.4}, {"p": 0.4, "q": 0.6})
    # no resample on the far side of zero: the p-value is only known to be below 1/resamples, never 0
    assert (same["diff"], same["ci_low"], same["ci_high"], same["p_value"]) == pytest.approx((20.0, 20.0, 20.0, 1 / 4000))
    assert same["p_value_text"] == "< 0.00025"


def test_compare_cli_paired_with_per_problem_data_unpaired_without(built, cli):
    r = cli("evals", "compare", "cond-a", "cond-b", "--store", str(built["store"].path), "--json")
    assert r.returncode == 0, r.stderr
    rows = {x["step"]: x for x in json.loads(r.stdout)["rows"]}
    assert sorted(rows) == [0, 10, 20, 40, 80]
    assert rows[0]["diff"] == 0 and rows[0]["significant"] is False
    assert rows[10]["method"] == "paired bootstrap" and rows[10]["diff"] == pytest.approx(-25.0)
    assert rows[10]["significant"] is True and rows[10]["ci_high"] < 0
    r = cli("evals", "compare", "qwen3-1.7b-math-cot", "qwen3-4b-math-cot", "--benchmark", "math500",
            "--store", str(built["store"].path))
    assert r.returncode == 0, r.stderr
    assert "no CI" in r.stdout and "+28.6" in r.stdout and "compared unpaired" in r.stderr
    r = cli("evals", "compare", "cond-a", "ghost", "--store", str(built["store"].path))
    assert r.returncode == 2 and "no complete score rows for run 'ghost'" in r.stderr


def test_names_stay_plain_text_in_figures_and_html(tmp_path):
    from curate.evaluate.report import build_report
    from curate.store import TraceStore

    st = TraceStore(tmp_path / "store")
    write_evals(st, [dict(run=run, step=s, suite="x", benchmark="cost$1$", metric="avg@1", value=v, settings_hash="h",
                          provenance="curate") for run in ("a$x$", "<script>alert(1)</script>")
                     for s, v in ((0, 5.0), (10, 3.0), (20, 6.0))])
    build_report(st, tmp_path / "out")
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a$x$" in (tmp_path / "out" / "figures" / "score_cost_1_.svg").read_text()  # not rendered as mathtext


def test_mixture_and_verdict_legends_stay_off_the_axis_labels(built):
    from curate.evaluate import plots
    from curate.evaluate.report import STATUSES

    def overlap(a, b):
        return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1

    with plots.style():
        for fig in (plots.mixture_figure(built["data"]["mixtures"]), plots.verdict_figure(built["data"]["verdicts"], STATUSES)):
            fig.canvas.draw()
            r = fig.canvas.get_renderer()
            labels = [t.get_window_extent(r) for ax in fig.axes for t in (ax.xaxis.label, *ax.get_xticklabels())
                      if t.get_text() and t.get_visible()]
            legends = [lg for lg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if lg is not None]
            assert legends
            for lg in legends:
                box = lg.get_window_extent(r)
                assert not any(overlap(box, t) for t in labels)


# What each training run of the same-named-runs store was, so a section showing the other run's numbers fails:
# its study record (seed), run folder (lr, loss), eval budget, and at step 10 (settings h) its behaviour rows and
# the responses they were computed from (tokens start + gap * i over 10 problems, the first `cut` truncated).
SAME_NAME = {"old-1111": {"study": "one", "seed": 1, "lr": 0.1, "loss": [9.0, 8.0, 7.0, 6.0, 5.0], "max_tokens": 4096,
                          "start": 1000, "gap": 100, "cut": 4},
             "new-2222": {"study": "two", "seed": 2, "lr": 0.002, "loss": [1.0, 0.5, 0.25], "max_tokens": 512,
                          "start": 300, "gap": 10, "cut": 1},
             "base-3333": {"study": "two", "seed": 2, "lr": 0.002, "loss": [2.0, 1.5], "max_tokens": 512,
                           "start": 500, "gap": 0, "cut": 0}}


def _same_name_store(path: Path):
    """`base`, and two runs named `cond` (two studies' cells: different training run ids), the older one better
    and evaluated at more steps; the newer one also scored at step 10 with other settings, before its main ones.
    Each run has its study record, run folder (config.yaml, metrics.jsonl) and, at step 10, behaviour rows and
    planned responses that differ from the other `cond`'s (SAME_NAME)."""
    import time

    import yaml

    from curate.records import Problem, Sample
    from curate.store import TraceStore
    from curate.store.lineage import record_run

    st = TraceStore(path)
    problems = [Problem(source="bench", domain="math", prompt=f"q{i}", reference=i, split="eval") for i in range(10)]
    st.add_problems(problems)

    def rows(run, run_id, vals, settings="h"):
        info = SAME_NAME[run_id]
        out = []
        for step, v in vals.items():
            k = round(v / 10)  # of 10 problems
            key = dict(run=run, checkpoint=f"{run_id}/step-{step}", step=step, suite="s", benchmark="bench",
                       settings_hash=settings, provenance="curate", run_id=run_id, n_problems=10, complete=True)
            out.append(dict(**key, metric="avg@1", value=10.0 * k, ci_low=0.0, ci_high=100.0,
                            details={"per_problem": {f"p{i}": float(i < k) for i in range(10)},
                                     "settings": {"n": 1, "sampling": {"max_tokens": info["max_tokens"]}}}))
            if step == 10 and settings == "h":
                tokens = [info["start"] + info["gap"] * i for i in range(10)]
                resp = [Sample(problem_id=p.id, text=f"{run_id} {i}", backend="vllm", model=run_id,
                               finish_reason="length" if i < info["cut"] else "stop", completion_tokens=t)
                        for i, (p, t) in enumerate(zip(problems, tokens))]
                st.add_samples(resp)
                plan_samples(st, [{"sample_id": x.id, "problem_id": x.problem_id, "sample_index": 0,
                                   **{c: key[c] for c in ("run", "checkpoint", "step", "suite", "benchmark", "settings_hash")}}
                                  for x in resp])
                out += [dict(**key, metric="mean_tokens", kind="behaviour", value=sum(tokens) / 10),
                        dict(**key, metric="truncation_rate", kind="behaviour", value=10.0 * info["cut"])]
        return out

    for run, run_id in (("cond", "old-1111"), ("cond", "new-2222"), ("base", "base-3333")):
        info = SAME_NAME[run_id]
        run_dir = path.parent / "runs" / run_id
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump({"model": {"name_or_path": "tiny"},
                                                             "train": {"lr": info["lr"], "seed": info["seed"]}}))
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps({"step": i + 1, "loss": x}) + "\n"
                                                       for i, x in enumerate(info["loss"])))
        record_run(st, {"run": run, "run_id": run_id, "study": info["study"], "cell": run, "condition": run,
                        "base_model": "tiny", "seed": info["seed"], "run_dir": str(run_dir)})
    for batch in (rows("cond", "old-1111", {10: 80.0, 20: 80.0}), rows("base", "base-3333", {10: 50.0, 20: 50.0}),
                  rows("cond", "new-2222", {10: 60.0}, settings="other"), rows("cond", "new-2222", {10: 20.0})):
        write_evals(st, batch)
        time.sleep(0.01)  # each batch evaluated after the one before
    return st


def test_a_name_shared_by_two_runs_compares_the_newest_run_and_says_so(tmp_path, cli):
    """Never a curve stitched from two runs (before, step 10 came from the newer `cond` and step 20 from the older):
    the newest run by that name, in the settings both sides share, named in a note and in the JSON; --b-id picks
    the other; a run id that matches none is one line listing them."""
    st = _same_name_store(tmp_path / "st")
    args = ("--store", str(st.path))
    r = cli("evals", "compare", "base", "cond", *args, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert (rep["a_run_id"], rep["b_run_id"]) == ("base-3333", "new-2222")
    assert [(x["step"], x["a"], x["b"], x["same_settings"]) for x in rep["rows"]] == [(10, 50.0, 20.0, True)]
    assert rep["rows"][0]["diff"] == pytest.approx(-30.0)
    [runs] = [n for n in rep["notes"] if n.startswith("run 'cond' names 2 runs")]
    assert "new-2222" in runs and "old-1111" in runs and "compared the newest, run id new-2222" in runs and "--b-id" in runs
    assert any(n.startswith("bench: cond was evaluated with 2 different settings; compared settings h ") for n in rep["notes"])
    r = cli("evals", "compare", "base", "cond", *args)
    assert r.returncode == 0 and "B = cond (run id new-2222)" in r.stdout and "compared the newest" in r.stderr, r.stderr

    r = cli("evals", "compare", "base", "cond", *args, "--b-id", "old", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["b_run_id"] == "old-1111" and [(x["step"], x["b"]) for x in rep["rows"]] == [(10, 80.0), (20, 80.0)]
    r = cli("evals", "compare", "base", "cond", *args, "--b-id", "x")
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and lines[0].startswith("error: run 'cond': run id 'x' matches none"), r.stderr
    assert "new-2222" in lines[0] and "old-1111" in lines[0] and len(lines) == 2


def test_the_report_answer_uses_the_newest_of_two_same_named_runs_and_warns(tmp_path):
    from curate.evaluate.report import build_report

    st = _same_name_store(tmp_path / "st")
    data = build_report(st, tmp_path / "out")
    [h] = data["headline"]
    assert h["step"] == 10 and {c["label"]: c["mean"] for c in h["conditions"]} == {"base": 50.0, "cond": 20.0}
    [c] = h["comparisons"]
    assert (c["leader"], c["other"], c["diff"]) == ("base", "cond", pytest.approx(30.0))
    [w] = [w for w in data["warnings"] if "stands for" in w]
    assert w.startswith("bench: run name cond stands for 3 evaluations") and w.endswith("the answer uses the newest, cond [run new-2222] [s h]")
    labels = [c["label"] for b in data["benchmarks"] for c in b["curves"] if c["run"] == "cond"]
    assert sorted(labels) == ["cond [run new-2222] [s h]", "cond [run new-2222] [s other]", "cond [run old-1111]"]


def test_explorer_links_name_the_training_run_of_each_same_named_curve(tmp_path):
    """The report's links into `curate view` open one training run each: the run id rides along, so the two
    `cond` runs land on their own grids, not on one that mixes them."""
    from curate.evaluate.report import build_report
    from curate.evaluate.report_pages import explorer_links

    st = _same_name_store(tmp_path / "st")
    data = build_report(st, tmp_path / "out")
    [bench] = data["benchmarks"]
    links = dict(explorer_links(data, bench))
    grid = "http://127.0.0.1:8300/evals/grid?"
    assert links == {"base": grid + "run=base&run_id=base-3333&benchmark=bench",
                     "cond [run old-1111]": grid + "run=cond&run_id=old-1111&benchmark=bench",
                     "cond [run new-2222]": grid + "run=cond&run_id=new-2222&benchmark=bench"}
    md = (tmp_path / "out" / "report.md").read_text()
    assert r"[cond \[run old-1111\]](http://127.0.0.1:8300/evals/grid?run=cond&run_id=old-1111&benchmark=bench)" in md
    assert "run=cond&amp;run_id=new-2222&amp;benchmark=bench" in (tmp_path / "out" / "report.html").read_text()
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from curate.view.app import create_app

    with TestClient(create_app(st)) as c:  # each link opens its own run's ten planned responses, not twenty
        for label, url in links.items():
            page = c.get(url.removeprefix("http://127.0.0.1:8300")).text
            assert label in page and page.count('class="cell s-') == 10, label  # the grid is headed `cond [run old-1111]`


def test_every_report_section_takes_the_run_the_answer_compared_or_shows_both(tmp_path, cli):
    """Per-condition sections (answer, behaviour CIs) read the run id `curate evals compare` picks for `cond`,
    down to the responses behind a one-seed CI; sections listing every run (training runs, loss, behaviour
    curves, eval settings) show both `cond` runs, each with its own seed, folder, loss and budget."""
    from curate.evaluate.report import build_report

    st = _same_name_store(tmp_path / "st")
    r = cli("evals", "compare", "base", "cond", "--store", str(st.path), "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    chosen, [row] = rep["b_run_id"], rep["rows"]
    assert chosen == "new-2222"
    mine, other = SAME_NAME[chosen], SAME_NAME["old-1111"]
    data = build_report(st, tmp_path / "out")

    [h] = data["headline"]
    cond = next(c for c in h["conditions"] if c["label"] == "cond")
    assert (cond["run_ids"], cond["seeds"], cond["mean"], h["step"]) == ([chosen], [mine["seed"]], row["b"], row["step"])

    beh = {r["metric"]: r for r in data["behaviour_ci"] if r["condition"] == "cond"}
    tokens = [mine["start"] + mine["gap"] * i for i in range(10)]
    mean = sum(tokens) / 10
    hw = 1.96 * math.sqrt(sum((t - mean) ** 2 for t in tokens) / 9) / math.sqrt(10)
    t = beh["mean_tokens"]
    assert (t["mean"], t["ci_over"]) == (mean, "10 responses")
    assert (t["ci_low"], t["ci_high"]) == (pytest.approx(mean - hw), pytest.approx(mean + hw))
    tr = beh["truncation_rate"]
    assert tr["mean"] == 10.0 * mine["cut"] and tr["ci_over"] == "10 responses"
    from curate.evaluate.findings import wilson

    assert (tr["ci_low"], tr["ci_high"]) == tuple(pytest.approx(100 * x) for x in wilson(mine["cut"] / 10, 10))

    runs = {r["label"]: r for r in data["runs"]}
    assert set(runs) == {"base", "cond [run old-1111]", "cond [run new-2222]"}
    for run_id, info in (("old-1111", other), ("new-2222", mine)):
        r = runs[f"cond [run {run_id}]"]
        assert (r["run_id"], r["seed"], r["train"]["lr"], r["loss_points"], r["recorded_by_study"]) == \
            (run_id, info["seed"], info["lr"], len(info["loss"]), info["study"])
        assert Path(r["run_dir"]).name == run_id
    loss = {r["label"]: [p["loss"] for p in r["points"]] for r in data["loss"]}
    assert loss == {"base": SAME_NAME["base-3333"]["loss"], "cond [run old-1111]": other["loss"],
                    "cond [run new-2222]": mine["loss"]}
    curves = {r["label"]: r["points"] for r in data["behaviour"]}
    assert curves["cond [run old-1111]"][0]["mean_tokens"] == other["start"] + 4.5 * other["gap"]
    assert curves["cond [run new-2222]"][0] == {"step": 10, "mean_tokens": mean, "truncation_rate": 10.0 * mine["cut"]}
    budget = {s["max_tokens"]: s["runs"] for s in data["eval_settings"]}
    assert budget[other["max_tokens"]] == "cond [run old-1111]"
    assert "cond [run new-2222]" in budget[mine["max_tokens"]] and "old-1111" not in budget[mine["max_tokens"]]

    md = (tmp_path / "out" / "report.md").read_text()
    html_text = (tmp_path / "out" / "report.html").read_text()
    assert r"| cond \[run old-1111\] | cond |" in md and "<td>cond [run new-2222]</td>" in html_text
