"""`curate evals import`: a re-import replaces what the same file imported before (a deleted line leaves the
table), a run split over two files is one curve in `curate evals` and in the report, and a key given twice in
one file is refused with its line numbers unless --last-wins. Real stores, real `python -m curate` processes."""
from __future__ import annotations

import json

from curate.store import TraceStore
from curate.store.evals import read_evals
from tests.helpers import run_cli


def _write(path, lines):
    path.write_text("run,benchmark,step,value\n" + "".join(line + "\n" for line in lines))
    return path


def _curve(store, run="P"):
    return {r["step"]: r["value"] for r in read_evals(TraceStore(store), f"run = '{run}'")}


def test_reimport_of_an_edited_file_replaces_its_rows(tmp_path):
    store = tmp_path / "st"
    f = _write(tmp_path / "p.csv", ["P,math500,0,70", "P,math500,10,64", "P,math500,20,60", "P,math500,40,72"])
    r = run_cli("evals", "import", str(f), "--store", str(store))
    assert r.returncode == 0, r.stderr
    assert "imported 4 rows" in r.stdout
    _write(f, ["P,math500,0,70", "P,math500,10,66", "P,math500,40,72"])  # step 10 edited, step 20 deleted
    r = run_cli("evals", "import", str(f), "--store", str(store), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows"] == 3
    assert _curve(store) == {0: 70.0, 10: 66.0, 40: 72.0}
    # the same file once more changes nothing
    r = run_cli("evals", "import", str(f), "--store", str(store), "--json")
    assert json.loads(r.stdout)["written"] == 0 and _curve(store) == {0: 70.0, 10: 66.0, 40: 72.0}
    # a rebuilt catalog replays the replacement, not the deleted step
    assert run_cli("doctor", "--store", str(store), "--rebuild").returncode == 0
    assert _curve(store) == {0: 70.0, 10: 66.0, 40: 72.0}


def test_a_run_split_over_two_files_is_one_curve(tmp_path):
    store = tmp_path / "st"
    base = _write(tmp_path / "base.csv", ["P,math500,0,70"])
    trained = _write(tmp_path / "trained.csv", ["P,math500,10,64", "P,math500,20,60", "P,math500,40,72"])
    for f in (base, trained):
        assert run_cli("evals", "import", str(f), "--store", str(store)).returncode == 0
    wide = json.loads(run_cli("evals", "--store", str(store), "--json").stdout)
    assert [(w["run"], w["step"], w["math500"]) for w in wide] == [("P", 0, 70.0), ("P", 10, 64.0), ("P", 20, 60.0), ("P", 40, 72.0)]
    r = run_cli("report", "--store", str(store), "--out", str(tmp_path / "rep"), "--json")
    assert r.returncode == 0, r.stderr
    curves = json.loads(r.stdout)["benchmarks"][0]["curves"]
    assert [c["label"] for c in curves] == ["P"]
    d = curves[0]["dynamics"]
    assert d["dip_depth"] == 10.0 and d["min_step"] == 20 and d["recovery"] == "step 40"


def test_a_key_given_twice_is_refused_with_its_lines_unless_last_wins(tmp_path):
    store = tmp_path / "st"
    f = _write(tmp_path / "dup.csv", ["P,math500,0,70", "P,math500,20,68", "P,math500,20,60", "P,math500,40,72"])
    r = run_cli("evals", "import", str(f), "--store", str(store))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "lines 3 and 4" in r.stderr and "--last-wins" in r.stderr, r.stderr
    assert not TraceStore(store).exists or not read_evals(TraceStore(store))
    r = run_cli("evals", "import", str(f), "--store", str(store), "--last-wins", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows"] == 3 and _curve(store) == {0: 70.0, 20: 60.0, 40: 72.0}


def test_fractions_imported_next_to_percent_curves_warn(tmp_path):
    store = tmp_path / "st"
    assert run_cli("evals", "import", str(_write(tmp_path / "pct.csv", ["P,math500,0,70", "P,math500,10,64"])),
                   "--store", str(store)).returncode == 0
    r = run_cli("evals", "import", str(_write(tmp_path / "frac.csv", ["Q,math500,0,0.70", "Q,math500,10,0.64"])),
                "--store", str(store))
    assert r.returncode == 0, r.stderr
    assert "warning: math500 avg@1: the imported values are all in [0, 1]" in r.stderr, r.stderr
    r = run_cli("evals", "import", str(_write(tmp_path / "more.csv", ["R,math500,0,71"])), "--store", str(store))
    assert "warning" not in r.stderr  # percent next to percent (and fractions) is not repeated as a warning


def test_rows_of_an_import_keyed_the_old_way_are_replaced(tmp_path):
    from curate.store.evals import write_evals

    st = TraceStore(tmp_path / "st")  # what an earlier curate wrote: the file's digest in the settings hash
    write_evals(st, [{"run": "P", "checkpoint": "", "step": s, "suite": "imported", "benchmark": "math500", "metric": "avg@1",
                      "value": v, "settings_hash": "imported-0123456789abcdef", "provenance": "imported:p.csv",
                      "details": {"file": "p.csv", "line": 2}} for s, v in ((0, 70.0), (20, 60.0))])
    f = _write(tmp_path / "p.csv", ["P,math500,0,71", "P,math500,10,65"])
    assert run_cli("evals", "import", str(f), "--store", str(st.path)).returncode == 0
    assert _curve(st.path) == {0: 71.0, 10: 65.0}
