"""curate as users install it: a wheel built from this checkout, installed into a fresh virtual environment and
run from outside the checkout, finds its shipped recipes, studies, suites and configs and runs the demo's first
steps. The new environment reuses this one's installed dependencies (a path entry, no download) and gets curate
only from the wheel."""
from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "cli.py", "curate", "verifiers", "recipes", "studies")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    import shutil

    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a copy of what the wheel is built from: the build writes build/ and egg-info beside it
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(tmp / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((tmp / "dist").glob("curate-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # this environment's packages as a plain path entry: its .pth files (an editable curate) are not read
    (Path(purelib) / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr[-2000:]
    return venv


def _run(venv: Path, cwd: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CURATE_STORE")}
    env["COLUMNS"] = "200"
    return subprocess.run([str(venv / "bin" / "curate"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_wheel_runs_from_outside_the_checkout(installed, tmp_path):
    where = _run(installed, tmp_path, "--version")
    assert where.returncode == 0 and where.stdout.startswith("curate "), where.stderr
    probe = subprocess.run([str(installed / "bin" / "python"), "-c", "import curate; print(curate.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, env={"PATH": os.environ.get("PATH", "")})
    assert str(installed) in probe.stdout and str(ROOT) not in probe.stdout, probe.stdout

    recipes = _run(installed, tmp_path, "recipes", "list", "--json")
    assert recipes.returncode == 0, recipes.stderr
    names = {r["name"] for r in json.loads(recipes.stdout)}
    assert {"math-cot", "countdown-toy"} <= names and all(r["error"] is None for r in json.loads(recipes.stdout))

    plan = _run(installed, tmp_path, "study", "plan", "demo", "--out", str(tmp_path / "study"), "--json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["study"] == "demo"

    st = str(tmp_path / "st")
    for args in (["tasks", "add", "countdown", "--size", "40", "--seed", "0"],
                 ["generate", "--backend", "synthetic", "--n", "2", "--option", "wrong_share=0.5", "--no-progress"],
                 ["verify", "--workers", "1"],
                 ["mix", "countdown-toy", "--out", str(tmp_path / "mix"), "--set", "size=8"]):
        r = _run(installed, tmp_path, *args, "--store", st)
        assert r.returncode == 0, (args, r.stdout[-1000:], r.stderr[-2000:])
    assert (tmp_path / "mix" / "manifest.json").is_file()


def test_training_without_torch_is_one_line_naming_the_extra(tmp_path):
    """`curate train` where torch is missing says which extra to install (no traceback)."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nclass _NoTorch:\n    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, _NoTorch())\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}"}
    r = subprocess.run([sys.executable, "-m", "curate", "train", "debug"], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0] == "error: training needs torch, which is not installed", r.stderr
    assert "curate's `train` extra" in lines[1] and "Traceback" not in r.stderr
