"""The README's "The study, end to end" block, run as written: its lines are read from README.md, so the
docs and this test cannot drift apart.

How the block is read: continuation lines (`\\`) are joined; a trailing comment starting with `GPU` or
`DATA` marks a line that needs GPUs or a downloaded dataset (skipped here), one starting with `CPU` marks
its CPU stand-in (run here), every other line runs. The lines before the first command (the `export`)
run before each command, each command in its own `bash` in a temp dir, with `curate` a shell function
for `python -m curate` and `N=64`: the size knob the README names for a CPU pass. Nothing else is
substituted. The one repository file the block reads (`tests/fixtures/evals/paper_curves.csv`, "a file
in this repository") is copied to the same relative path in the temp dir.

After each section, the test checks that the section's output is what the next one needs: eval puzzles
and train puzzles; traces for train puzzles only, some of them wrong; every trace labelled; mixtures
of N rows and a sweep over the same questions with the requested share of incorrect traces; two trained
runs with checkpoints; eval rows for both; a report, a comparison and a browsable export.

The default run covers sections 1-4 (problems to mixtures, the sweep included, about 30 s); the whole block
with training and evaluation on the tiny CPU model is `slow` (a few minutes on a shared CPU).
Run: python -m pytest -q tests/test_readme_walkthrough.py  (add `-m slow` for the whole block)
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from tests.helpers import ROOT

N = 64  # the README's "export N=64 first for a CPU pass"
FIXTURE = "tests/fixtures/evals/paper_curves.csv"
SWEEP = (0, 0.25, 0.5, 0.75, 1)


@dataclass(frozen=True)
class Line:
    section: int
    command: str
    marker: Optional[str]  # GPU, DATA, CPU or None


def walkthrough() -> tuple[str, list[Line]]:
    """(setup lines, command lines) of the README's walkthrough block."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## The study, end to end", 1)[1].split("```bash\n", 1)[1].split("\n```", 1)[0]
    joined: list[str] = []
    for raw in block.splitlines():
        if joined and joined[-1].endswith("\\"):
            joined[-1] = joined[-1][:-1].rstrip() + " " + raw.strip()
        else:
            joined.append(raw)
    setup, lines, section = [], [], 0
    for ln in joined:
        head = re.match(r"#\s*(\d+)\.", ln)
        if head:
            section = int(head.group(1))
            continue
        if not ln.strip() or ln.lstrip().startswith("#"):
            continue
        if section == 0:
            setup.append(ln)
            continue
        comment = re.search(r"\s#\s+(\S+)", ln)
        word = comment.group(1).rstrip(":") if comment else None
        lines.append(Line(section, ln, word if word in ("GPU", "DATA", "CPU") else None))
    return "\n".join(setup), lines


def test_the_block_marks_what_a_cpu_cannot_run_and_stands_in_for_gpu_lines():
    setup, lines = walkthrough()
    assert re.search(r"\bN=\$\{N:-20480\}", setup), "the README's size knob moved: update N here and the README's prose"
    assert "export N=64" in (ROOT / "README.md").read_text()
    assert all(ln.command.startswith("curate ") for ln in lines), [ln.command for ln in lines if not ln.command.startswith("curate ")]
    sections = sorted({ln.section for ln in lines})
    assert sections == list(range(1, 9))
    for s in sections:
        here = [ln for ln in lines if ln.section == s]
        if any(ln.marker == "GPU" for ln in here):
            assert any(ln.marker == "CPU" for ln in here), f"section {s} has GPU lines and no CPU stand-in"
        assert any(ln.marker in (None, "CPU") for ln in here), f"section {s} has nothing a CPU runs"
    # generate never samples the eval split, and the CPU stand-in can produce the sweep's incorrect traces
    gens = [ln.command for ln in lines if ln.command.startswith("curate generate") and "countdown" in ln.command]
    assert gens and all("split = 'train'" in g for g in gens)
    assert any("wrong_share=" in g for g in gens if "--backend synthetic" in g)


# ---------------------------------------------------------------- running it


def _run(tmp: Path, setup: str, line: Line) -> subprocess.CompletedProcess:
    script = f'curate() {{ "{sys.executable}" -m curate "$@"; }}\n{setup}\n{line.command}\n'
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURATE_")}
    env.update(PYTHONPATH=str(ROOT), N=str(N), COLUMNS="200", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    r = subprocess.run(["bash", "-c", script], cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"README line failed: {line.command}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def _q(tmp: Path, sql: str) -> list[dict]:
    from curate.store import TraceStore

    return TraceStore(tmp / "st").query(sql).to_pylist()


def _manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


def _problem_ids(d: Path) -> list[str]:
    import pyarrow.parquet as pq

    return sorted(pq.read_table(next((d / "data").glob("*.parquet")), columns=["problem_id"]).column("problem_id").to_pylist())


def _check(tmp: Path, section: int, out: str) -> None:
    """What section `section` must leave for the next one."""
    if section == 1:
        split = {r["split"]: r["n"] for r in _q(tmp, "SELECT split, count(*) AS n FROM problems WHERE source = 'countdown' GROUP BY split")}
        assert split["eval"] == 200
        assert N < split["train"] <= 2 * N  # a train puzzle equal to an eval one is refused
    elif section == 2:
        by_split = {r["split"]: r["n"] for r in _q(tmp, "SELECT p.split, count(*) AS n FROM samples s JOIN problems p ON p.id = s.problem_id GROUP BY ALL")}
        train = _q(tmp, "SELECT count(*) AS n FROM problems WHERE split = 'train'")[0]["n"]
        assert by_split == {"train": 4 * train}  # no trace for an eval puzzle
    elif section == 3:
        status = {r["status"]: r["n"] for r in _q(tmp, "SELECT status, count(*) AS n FROM traces GROUP BY status")}
        assert set(status) == {"correct", "incorrect"}, status  # every trace labelled, and the sweep has wrong ones
        both = _q(tmp, """SELECT count(*) AS n FROM (SELECT problem_id FROM traces GROUP BY problem_id
                          HAVING count(*) FILTER (status = 'correct') > 0 AND count(*) FILTER (status = 'incorrect') > 0)""")
        assert both[0]["n"] >= N  # enough questions for a full-size sweep
    elif section == 4:
        assert _manifest(tmp / "mixes" / "countdown-cot")["rows"] == N
        questions = None
        for f in SWEEP:
            d = tmp / "mixes" / "sweep" / f"incorrect_fraction={f}"
            m = _manifest(d)
            assert m["rows"] == N
            wrong = sum(c["rows"] for c in m["composition"] if c["status"] == "incorrect")
            assert wrong == int(f * N + 0.5), (f, m["composition"])
            ids = _problem_ids(d)
            assert questions is None or ids == questions  # every point trains on the same questions
            questions = ids
    elif section == 5:
        for run in ("verified", "incorrect-50"):
            assert (tmp / "runs" / run / "checkpoints" / "step-000004").is_dir()
    elif section == 6:
        rows = _q(tmp, "SELECT run, step FROM evals WHERE benchmark = 'countdown' GROUP BY ALL")
        steps = {run: sorted(r["step"] for r in rows if r["run"] == run) for run in ("verified", "incorrect-50")}
        assert steps == {"verified": [0, 2, 4], "incorrect-50": [0, 2, 4]}, rows
        assert "verified" in out and "incorrect-50" in out
    elif section == 7:
        assert (tmp / "report" / "report.html").is_file()
        assert "countdown" in out  # the comparison's table
    elif section == 8:
        assert (tmp / "view" / "index.html").is_file()


def _walk(tmp: Path, last_section: int) -> list[str]:
    setup, lines = walkthrough()
    (tmp / FIXTURE).parent.mkdir(parents=True)
    shutil.copy(ROOT / FIXTURE, tmp / FIXTURE)
    ran = []
    for section in range(1, last_section + 1):
        out = ""
        for line in lines:
            if line.section == section and line.marker in (None, "CPU"):
                out += _run(tmp, setup, line).stdout
                ran.append(line.command)
        _check(tmp, section, out)
    return ran


def test_the_cpu_lines_from_problems_to_the_sweep_run_as_written(tmp_path):
    ran = _walk(tmp_path, 4)
    assert any("--sweep quality.incorrect_fraction=" in c for c in ran)


@pytest.mark.slow
def test_the_whole_cpu_walkthrough_runs_as_written(tmp_path):
    ran = _walk(tmp_path, 8)
    assert any(c.startswith("curate train") for c in ran) and any(c.startswith("curate view") for c in ran)
