"""Lineage joins eval rows to what a study recorded on the training run id, not the run name: two studies in
one store with a cell of the same name keep their own attribution (`consistent = true` for both) and stay two
curves in `curate evals` and the report; step-0 rows (the base model) carry none of the mixture or recipe.
A real store; the table and the report through real `python -m curate` processes."""
from __future__ import annotations

import json

from curate.store import TraceStore
from curate.store.evals import write_evals
from curate.store.lineage import record_run
from tests.helpers import run_cli

STUDIES = {"s1": ("id-one", "recipe-1", [70.0, 60.0, 75.0]), "s2": ("id-two", "recipe-2", [50.0, 55.0, 40.0])}


def _store(tmp_path) -> TraceStore:
    st = TraceStore(tmp_path / "st")
    for study, (run_id, recipe, values) in STUDIES.items():
        record_run(st, {"run": "math-cot", "study": study, "cell": "math-cot", "condition": "math-cot", "run_id": run_id,
                        "recipe_hash": recipe, "mixture_fingerprint": f"mix-{study}", "mixture": f"mix-{study}",
                        "base_model": "Qwen/Qwen3-4B-Base"})
        write_evals(st, [{"run": "math-cot", "checkpoint": f"/{study}/math-cot/step-{s}", "step": s, "suite": "paper",
                          "benchmark": "math500", "metric": "avg@3", "value": v, "settings_hash": "h", "provenance": "curate",
                          "run_id": run_id, **({} if s == 0 else {"recipe_hash": recipe, "mixture_fingerprint": f"mix-{study}"})}
                         for s, v in zip((0, 10, 20), values)])
    return st


def test_two_studies_with_one_cell_name_keep_their_own_lineage(tmp_path):
    st = _store(tmp_path)
    rows = st.query("SELECT study, run_id, step, recipe_hash, study_recipe_hash, mixture, consistent FROM lineage "
                    "ORDER BY study, step").to_pylist()
    assert [(r["study"], r["run_id"], r["step"]) for r in rows] == [
        ("s1", "id-one", 0), ("s1", "id-one", 10), ("s1", "id-one", 20),
        ("s2", "id-two", 0), ("s2", "id-two", 10), ("s2", "id-two", 20)]
    trained = [r for r in rows if r["step"] > 0]
    assert all(r["consistent"] is True and r["recipe_hash"] == r["study_recipe_hash"] for r in trained)
    base = [r for r in rows if r["step"] == 0]  # the base model was not trained on any mixture
    assert all(r["consistent"] is None and r["mixture"] is None and r["study_recipe_hash"] is None for r in base)
    # recording a study's run again replaces its own record only
    record_run(st, {"run": "math-cot", "study": "s1", "run_id": "id-one", "recipe_hash": "recipe-1"})
    assert st.query("SELECT count(*) AS n FROM study_run_rows").to_pylist()[0]["n"] == 2


def test_two_studies_with_one_cell_name_are_two_curves(tmp_path):
    st = _store(tmp_path)
    wide = json.loads(run_cli("evals", "--store", str(st.path), "--json").stdout)
    assert [(w["run"], w["run_id"], w["step"], w["math500"]) for w in wide] == [
        ("math-cot", "id-one", 0, 70.0), ("math-cot", "id-one", 10, 60.0), ("math-cot", "id-one", 20, 75.0),
        ("math-cot", "id-two", 0, 50.0), ("math-cot", "id-two", 10, 55.0), ("math-cot", "id-two", 20, 40.0)]
    r = run_cli("report", "--store", str(st.path), "--out", str(tmp_path / "rep"), "--json")
    assert r.returncode == 0, r.stderr
    curves = json.loads(r.stdout)["benchmarks"][0]["curves"]
    assert sorted(c["label"] for c in curves) == ["math-cot [run id-one]", "math-cot [run id-two]"]
    assert sorted(c["dynamics"]["final"] for c in curves) == [40.0, 75.0]
