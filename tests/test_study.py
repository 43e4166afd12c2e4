"""Study files, the planner, stale detection, the slurm executor (with a fake sbatch) and the lineage view.

Fast: nothing here trains or evaluates. End-to-end runs are in tests/test_study_run.py.
"""
from __future__ import annotations

import json
import os
import stat
import textwrap
from pathlib import Path

import pytest

from curate.study import build_plan, load_study
from curate.study import state as st

STUDY = """\
name: t
output: {out}
prepare:
  - tasks add countdown --size 10 --seed 0
conditions:
  - name: verified
    recipe: countdown-toy
  - name: same
    recipe: countdown-toy
    overrides: {{seed: 0}}
  - name: nothink
    recipe: countdown-toy
    overrides: {{quality.strip_thinking: true}}
models:
  - {{name: tiny, path: tiny}}
  - {{name: q4b, path: Qwen/Qwen3-4B-Base}}
train:
  config: debug
  set: {{train.max_steps: 4, train.global_batch_size: 2}}
  per_condition: {{nothink: {{train.lr: 0.002}}}}
eval:
  suite: smoke
  steps: [2, 4]
  backend: hf
  limit: 1
"""


def write(tmp_path: Path, text: str = STUDY, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text.format(out=tmp_path / "out"))
    return p


def test_plan_grid_shares_equal_mixtures_and_orders_nodes(tmp_path):
    plan = build_plan(write(tmp_path))
    assert [c.id for c in plan.cells] == ["verified-tiny", "verified-q4b", "same-tiny", "same-q4b", "nothink-tiny", "nothink-q4b"]
    # `same` resolves to the same recipe as `verified`: one mixture, reported
    assert sorted(plan.mixtures) == ["nothink", "verified"]
    assert plan.mixtures["verified"].conditions == ["verified", "same"]
    assert any("share mixture verified" in w for w in plan.warnings)
    ids = list(plan.nodes)
    for n in plan.nodes.values():
        assert all(ids.index(d) < ids.index(n.id) for d in n.deps), n.id
    train = plan.nodes["train/nothink-q4b"]
    assert train.argv[:2] == ["curate", "train"] and "train.lr=0.002" in train.argv
    assert "model.name_or_path=Qwen/Qwen3-4B-Base" in train.argv and "checkpoint.steps=[2, 4]" in train.argv
    ev = plan.nodes["eval/verified-tiny"]
    assert ev.argv[:3] == ["curate", "eval", str(plan.out / "runs" / "verified-tiny")]
    assert ev.argv[ev.argv.index("--steps") + 1] == "2,4" and ev.argv[ev.argv.index("--run") + 1] == "verified-tiny"
    assert set(ev.deps) == {"train/verified-tiny", "model/tiny"}
    assert plan.nodes["mix/verified"].deps == ["prepare/1-tasks"]
    assert plan.nodes["report"].deps == [n for n in ids if n.startswith("eval/")]


def test_plan_command_prints_estimate(tmp_path, cli):
    r = cli("study", "plan", str(write(tmp_path)), "--json")
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)
    assert p["estimate"]["runs"] == 6 and p["estimate"]["mixtures"] == 2
    assert p["estimate"]["checkpoint_evals"] == 6 * 3  # two steps plus the base model
    assert p["estimate"]["train_gpu_hours"] > 0
    assert not (tmp_path / "out").exists(), "plan must not write anything"


@pytest.mark.parametrize("edit, expect", [
    (("  suite: smoke", "  suite: nosuch"), "eval.suite: no such suite 'nosuch'"),
    (("    recipe: countdown-toy\n  - name: same", "    recipe: countdown-tyo\n  - name: same"), "conditions.0.recipe: no such recipe 'countdown-tyo'"),
    (("  - {{name: q4b, path: Qwen/Qwen3-4B-Base}}", "  - {{name: q4b, path: ./missing-model}}"), "models.1.path: './missing-model' is not a model folder"),
    (("  backend: hf", "  backend: hf\n  bogus: 1"), ":25: eval.bogus: unknown key"),
    (("  config: debug", "  config: nosuch"), "train.config: no such training config 'nosuch'"),
    (("  limit: 1", "  limit: 1\n  set: {{metrics: [pass@4]}}"), "eval: "),
    (("overrides: {{seed: 0}}", "overrides: {{quality.nope: 1}}"), "conditions.1.overrides.quality.nope: unknown recipe field"),
    (("  set: {{train.max_steps: 4,", "  set: {{train.max_stepz: 4,"), "train (cell verified-tiny)"),
])
def test_bad_study_gives_one_line_naming_file_line_and_field(tmp_path, cli, edit, expect):
    text = STUDY.replace(*edit)
    assert text != STUDY
    r = cli("study", "plan", str(write(tmp_path, text)))
    assert r.returncode == 2, r.stdout
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and expect in err[0], r.stderr
    assert "Traceback" not in r.stderr


def test_shipped_studies_validate():
    for name in ("paper", "toy", "toy-sweep", "demo"):
        spec, _ = load_study(name)
        assert spec.name == name
    toy = build_plan("toy", out="/tmp/unused-toy-plan")
    assert len(toy.cells) == 9 and len(toy.mixtures) == 3 and toy.nodes["model/tiny"].argv[-2:] == ["--size", "char-96x4"]
    sweep = build_plan("toy-sweep", out="/tmp/unused-sweep-plan")
    assert sorted(m.recipe.quality.incorrect_fraction for m in sweep.mixtures.values()) == [0, 0.25, 0.5, 0.75, 1]
    plan = build_plan("paper", out="/tmp/unused-paper-plan")
    assert len(plan.cells) == 20 and len(plan.mixtures) == 5
    assert plan.spec.eval.steps == [10, 20, 40, 80, 160, 320, 480, 640]


def _fake_done(plan, node_id: str, out_hash: str = "h") -> None:
    node = plan.nodes[node_id]
    states = st.node_states(plan, verify_evals=False)
    key = st.node_key(plan, node, {d: states[d].output_hash for d in node.deps})
    st.mark_done(plan, node, key, out_hash)


def test_markers_not_folders_decide_done_and_changes_make_cells_stale(tmp_path):
    path = write(tmp_path)
    plan = build_plan(path)
    # a folder that exists is not a finished node
    (plan.out / "mixtures" / "verified").mkdir(parents=True)
    assert st.node_states(plan)["mix/verified"].state == "pending"
    node = plan.nodes["prepare/1-tasks"]
    _fake_done(plan, node.id, st.output_hash(plan, node))
    states = st.node_states(plan)
    assert states["prepare/1-tasks"].state == "done" and states["mix/verified"].state == "pending"
    # change the prepare command: the finished node is now stale, with the reason
    path.write_text(path.read_text().replace("--size 10", "--size 12"))
    states = st.node_states(build_plan(path))
    assert states["prepare/1-tasks"].state == "stale"
    assert "--size" in states["prepare/1-tasks"].reason or "12" in states["prepare/1-tasks"].reason


def test_changed_study_over_finished_cell_is_refused_naming_the_cell(tmp_path, cli):
    path = write(tmp_path)
    plan = build_plan(path)
    for nid in ("prepare/1-tasks", "model/tiny"):
        _fake_done(plan, nid, st.output_hash(plan, plan.nodes[nid]) or "x")
    # a finished mixture: the real manifest hash is what the marker records
    mdir = plan.mixtures["nothink"].dir
    mdir.mkdir(parents=True)
    (mdir / "manifest.json").write_text("{}")
    _fake_done(plan, "mix/nothink", st.output_hash(plan, plan.nodes["mix/nothink"]))
    assert st.node_states(plan)["mix/nothink"].state == "done"
    path.write_text(path.read_text().replace("quality.strip_thinking: true", "quality.strip_thinking: true, size: 100"))
    r = cli("study", "run", str(path), "--dry-run")
    assert r.returncode == 1
    assert "stale" in r.stderr and "nothink-tiny" in r.stderr and "nothink-q4b" in r.stderr and "verified-tiny" not in r.stderr
    assert "--rerun-stale" in r.stderr
    s = json.loads(cli("study", "status", str(path), "--json").stdout)
    cells = {c["cell"]: c for c in s["cells"]}
    assert cells["nothink-tiny"]["mix"] == "stale" and cells["verified-tiny"]["mix"] == "pending"
    # a changed output (the manifest edited by hand) is also caught by its content hash
    path.write_text(path.read_text().replace(", size: 100", ""))
    (mdir / "manifest.json").write_text('{"edited": true}')
    assert st.node_states(build_plan(path))["mix/nothink"].state == "stale"


def _fake_sbatch(tmp_path: Path) -> tuple[Path, Path]:
    bindir, calls = tmp_path / "bin", tmp_path / "sbatch_calls.jsonl"
    bindir.mkdir()
    script = bindir / "sbatch"
    script.write_text(textwrap.dedent(f"""\
        #!/usr/bin/env python3
        import json, sys
        calls = {str(calls)!r}
        n = sum(1 for _ in open(calls)) if __import__("os").path.exists(calls) else 0
        open(calls, "a").write(json.dumps(sys.argv[1:]) + "\\n")
        print(f"{{1000 + n}};cluster")
        """))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return bindir, calls


def test_slurm_scripts_and_afterok_chain_with_a_fake_sbatch(tmp_path, cli):
    path = write(tmp_path)
    bindir, calls = _fake_sbatch(tmp_path)
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    r = cli("study", "run", str(path), "--executor", "slurm", "--dry-run", env=env)
    assert r.returncode == 0, r.stderr
    assert not calls.exists(), "--dry-run must not submit"
    assert "would run: sbatch --parsable" in r.stdout
    r = cli("study", "run", str(path), "--executor", "slurm", env=env)
    assert r.returncode == 0, r.stderr
    got = [json.loads(line) for line in calls.read_text().splitlines()]
    plan = build_plan(path)
    # without `curate report` in this checkout the report node is skipped with one line
    nodes = [n for n in plan.nodes.values() if n.kind != "report" or "skipping the report" not in r.stdout]
    assert len(got) == len(nodes)
    job = {}
    for node, argv in zip(nodes, got):
        script = Path(argv[-1])
        assert script.name == node.id.replace("/", "__") + ".sbatch"
        deps = [a for a in argv if a.startswith("--dependency=")]
        want = [job[d] for d in node.deps]
        assert deps == ([f"--dependency=afterok:{':'.join(want)}"] if want else []), node.id
        job[node.id] = str(1000 + len(job))
        text = script.read_text()
        assert text.startswith("#!/bin/bash\n#SBATCH --job-name=t.")
        assert f"-m curate study mark {path.resolve()}" in text and f"--node {node.id}" in text
        assert ("--gpus-per-node=8" in text) == (node.kind == "train")
        assert ("--gpus-per-node=1" in text) == (node.kind == "eval")
    assert json.loads((plan.out / "slurm" / "jobs.json").read_text()) == job


def test_slurm_script_runs_its_node_and_marks_it_done(tmp_path, cli):
    import subprocess

    path = write(tmp_path)
    r = cli("study", "run", str(path), "--executor", "slurm", "--dry-run")
    assert r.returncode == 0, r.stderr
    plan = build_plan(path)
    script = plan.out / "slurm" / "prepare__1-tasks.sbatch"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert st.node_states(plan)["prepare/1-tasks"].state == "done"
    # submitting again leaves the finished node out
    r = cli("study", "run", str(path), "--executor", "slurm", "--dry-run")
    assert "prepare__1-tasks.sbatch" not in r.stdout and "mix__verified.sbatch" in r.stdout


def test_lineage_view_walks_from_an_eval_row_to_the_recipe(tmp_path):
    from curate.store import TraceStore
    from curate.store.evals import write_evals
    from curate.store.lineage import read_lineage, record_run, retire_run

    store = TraceStore(tmp_path / "store").init()
    lineage = {"run_id": "r1", "config_hash": "c1", "mixture_fingerprint": "m1", "recipe_hash": "rh", "store_snapshot": "s1"}
    write_evals(store, [{"run": "verified-tiny", "checkpoint": "/x/step-000002", "step": 2, "suite": "smoke",
                         "benchmark": "countdown", "metric": "avg@1", "value": 25.0, "settings_hash": "h",
                         "provenance": "curate", **lineage}])
    record_run(store, {"run": "verified-tiny", "study": "t", "cell": "verified-tiny", "condition": "verified",
                       "recipe_file": "/o/recipes/verified.yaml", "recipe_hash": "rh", "mixture_fingerprint": "m1",
                       "manifest": "/o/mixtures/verified/manifest.json", "store_snapshot": "s1", "config_hash": "c1"})
    rows = store.query("SELECT step, value, condition, recipe_file, study_recipe_hash, manifest, consistent FROM lineage").to_pylist()
    assert rows == [{"step": 2, "value": 25.0, "condition": "verified", "recipe_file": "/o/recipes/verified.yaml",
                     "study_recipe_hash": "rh", "manifest": "/o/mixtures/verified/manifest.json", "consistent": True}]
    # a checkpoint whose mixture disagrees with the study's record is flagged, not hidden
    write_evals(store, [{"run": "verified-tiny", "checkpoint": "/x/step-000004", "step": 4, "suite": "smoke",
                         "benchmark": "countdown", "metric": "avg@1", "value": 30.0, "settings_hash": "h",
                         "provenance": "curate", **{**lineage, "mixture_fingerprint": "other"}}])
    assert [r["consistent"] for r in read_lineage(store, "verified-tiny")] == [True, False]
    # retiring a superseded run renames its rows instead of mixing them with the rerun
    assert retire_run(store, "verified-tiny", "verified-tiny@abc") == 2
    assert read_lineage(store, "verified-tiny") == []
    assert {r["condition"] for r in read_lineage(store, "verified-tiny@abc")} == {"verified"}


@pytest.mark.parametrize("gpus, jobs, first", [([0, 1], 1, ["start prepare/0 on GPU 0", "start prepare/1 on GPU 1"]),
                                               ([], 2, ["start prepare/0", "start prepare/1"])],
                         ids=["one-per-gpu", "cpu-slots"])
def test_local_executor_runs_two_nodes_at_once_and_the_third_waits(tmp_path, gpus, jobs, first):
    """GPU nodes take one GPU each; with no GPU listed they are CPU nodes, `jobs` of them side by side."""
    from curate.store import TraceStore
    from curate.study.executors import Local
    from curate.study.plan import Node

    plan = build_plan(write(tmp_path))
    TraceStore(tmp_path / "st").init()
    nodes = [Node(f"prepare/{i}", "prepare", {"args": ["stats"], "store": str(tmp_path / "st")}, gpu=True) for i in range(3)]
    plan.nodes = {n.id: n for n in nodes}
    said: list[str] = []
    res = Local(plan, lambda node: None, gpus=gpus, retries=0, echo=said.append, jobs=jobs).run(nodes)
    assert res["done"] == ["prepare/0", "prepare/1", "prepare/2"] and not res["failed"]
    starts = [s for s in said if s.startswith("start")]
    assert starts[:2] == first
    # the first two run at the same time; the third starts only after one of them finished
    first_done = min(i for i, s in enumerate(said) if s.startswith("done"))
    assert said.index(starts[1]) < first_done < said.index(starts[2])


def test_a_study_without_its_store_stops_before_anything_runs(tmp_path, cli):
    """The demo study run before `curate demo`: one line naming the missing store, and no node was started."""
    out = tmp_path / "study"
    r = cli("study", "run", "demo", "--out", str(out), "--until", "mix", cwd=tmp_path)  # its store: ./demo-out/store
    assert r.returncode == 2, r.stdout + r.stderr
    assert "the study's store does not exist" in r.stderr and "curate demo" in r.stderr
    assert "start " not in r.stdout and not (out / "models").exists()
