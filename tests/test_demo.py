"""The README's first command end to end (small sizes): problems -> traces -> verdicts -> three mixtures."""
from __future__ import annotations

import json

from curate.demo import DemoConfig, run_demo
from curate.store import TraceStore
from tests.helpers import run_cli


def test_demo_pipeline_measures_each_condition(tmp_path):
    cfg = DemoConfig(problems=40, samples_per_problem=3, wrong_share=0.4, mixture_size=20, workers=2)
    rep = run_demo(tmp_path / "store", tmp_path / "out", cfg, say=lambda s: None)
    by = {m["mixture"]: m for m in rep.mixtures}
    assert by["verified"]["rows"] == 20 and by["verified"]["incorrect"] == 0.0
    assert by["incorrect-50"]["incorrect"] == 0.5
    assert by["no-thinking"]["thinking"] == 0.0 and by["verified"]["thinking"] == 1.0
    assert by["no-thinking"]["avg_chars"] < by["verified"]["avg_chars"]
    st = TraceStore(tmp_path / "store")
    counts = st.query("SELECT count(*) AS n, count(status) AS labelled FROM traces").to_pylist()[0]
    assert counts == {"n": 120, "labelled": 120}
    # every step is a no-op on rerun: the store does not grow and the mixtures are byte-identical
    before = (tmp_path / "out" / "mixtures" / "verified" / "manifest.json").read_text()
    rep2 = run_demo(tmp_path / "store", tmp_path / "out", cfg, say=lambda s: None)
    assert "0 new" in rep2.steps[1]["detail"]
    assert st.counts()["samples"] == 120
    assert (tmp_path / "out" / "mixtures" / "verified" / "manifest.json").read_text() == before


def test_demo_cli_json(tmp_path):
    r = run_cli("demo", "--store", str(tmp_path / "s"), "--out", str(tmp_path / "o"), "--problems", "12", "--samples", "2", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert [m["mixture"] for m in data["mixtures"]] == ["verified", "incorrect-50", "no-thinking"]
