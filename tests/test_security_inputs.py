"""Hostile input files: import rows, YAML files and command-line options built to crash or exhaust a reader.

Every case ends with one `error:` line naming the file and line (or the option), or, with --skip-bad, with
the bad row listed and the good ones stored; never a traceback.
Run: python -m pytest -q tests/test_security_inputs.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate import sources
from curate.importer import import_dataset
from curate.store import TraceStore
from tests.helpers import ROOT

GOOD = json.dumps({"prompt": "q", "response": "r", "answer": "1"})
HOSTILE_LINES = [
    ('{"prompt": "q", "response": "r", "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ('{"prompt": "q", "response": "r", "x": ' + "1" * 5000 + "}", "4300 digits"),
    ('{"prompt": "q", "response": "r", "answer": NaN}', "NaN is not a JSON value"),
    ('{"prompt": "q", "response": "r", "answer": -Infinity}', "-Infinity is not a JSON value"),
    ('{"prompt": "q", "response": "r", "answer": 1e999999}', "1e999999 is out of range"),
    ('{"prompt": "q\\ud800", "response": "r"}', "half of a surrogate pair"),
]


def curate(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "curate", *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def one_error_line(r: subprocess.CompletedProcess, *needles: str) -> str:
    both = r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0 and "Traceback" not in both, both
    assert lines[0].startswith("error:") and len(lines) <= 2, both
    for n in needles:
        assert n in lines[0], both
    return lines[0]


# ---------------------------------------------------------------- import rows
@pytest.mark.parametrize("line, needle", HOSTILE_LINES)
def test_hostile_jsonl_line_is_one_error_line(tmp_path, line, needle):
    f = tmp_path / "data.jsonl"
    f.write_text(GOOD + "\n" + line + "\n")
    one_error_line(curate(tmp_path, "import", str(f), "--store", "st"), "data.jsonl:2: malformed JSON", needle)


def test_hostile_lines_are_skipped_with_skip_bad(tmp_path):
    f = tmp_path / "data.jsonl"
    f.write_text("\n".join([line for line, _ in HOSTILE_LINES] + [GOOD]) + "\n")
    rep = import_dataset(TraceStore(tmp_path / "st"), str(f), skip_bad=True)
    assert rep.samples == 1 and len(rep.skipped) == len(HOSTILE_LINES)


def test_an_overlong_line_is_read_past_in_bounded_pieces(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_LINE_BYTES", 64)
    f = tmp_path / "data.jsonl"
    long = json.dumps({"prompt": "q", "response": "x" * 1000})
    f.write_text(GOOD + "\n" + long + "\n" + json.dumps({"prompt": "q2", "response": "r"}) + "\n")
    reads = []
    real = sources._lines

    def spy(fh, limit):
        for raw, size in real(fh, limit):
            reads.append(size if raw is None else len(raw))
            yield raw, size

    monkeypatch.setattr(sources, "_lines", spy)
    st = TraceStore(tmp_path / "st")
    rep = import_dataset(st, str(f), skip_bad=True)
    assert rep.samples == 2 and len(rep.skipped) == 1 and "data.jsonl:2: line of 1,0" in rep.skipped[0]
    assert reads[1] == len(long) + 1  # the whole long line was consumed, the next row read normally
    with pytest.raises(Exception, match="longer than the limit of 64"):
        import_dataset(TraceStore(tmp_path / "st2"), str(f))


def test_parquet_answer_that_is_not_finite_is_a_bad_row(tmp_path):
    pq.write_table(pa.table({"prompt": ["q", "q2"], "response": ["r", "r"], "answer": [float("nan"), 2.0]}),
                   tmp_path / "data.parquet")
    one_error_line(curate(tmp_path, "import", "data.parquet", "--store", "st"), "row 1", "answer", "finite")


# ---------------------------------------------------------------- YAML files and --set values
def test_recipe_with_a_non_finite_number_is_one_error_line(tmp_path):
    text = (ROOT / "recipes" / "countdown-toy.yaml").read_text()
    (tmp_path / "r.yaml").write_text(text.replace("  - name: countdown\n", "  - name: countdown\n    weight: .inf\n", 1))
    one_error_line(curate(tmp_path, "recipes", "validate", "r.yaml"), "r.yaml:", "sources.0.weight", ".inf is not a finite number")


@pytest.mark.parametrize("value", [".nan", "-.Inf", "1.0e+999", "[1, .inf]", "{a: .NaN}"])
def test_set_values_must_be_finite(value):
    from curate.config import parse_set
    from curate.errors import ConfigError

    with pytest.raises(ConfigError, match="is not a finite number"):
        parse_set(f"train.lr={value}")


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_a_yaml_path_that_is_no_regular_file_is_refused_without_waiting(tmp_path, kind):
    import signal

    from curate.errors import ConfigError
    from curate.yamlfile import load_yaml

    path = {"device": Path("/dev/zero"), "directory": tmp_path}.get(kind, tmp_path / "r.yaml")
    if kind == "fifo":
        os.mkfifo(path)
    signal.signal(signal.SIGALRM, lambda *a: pytest.fail("the reader waited on the file"))
    signal.alarm(10)
    try:
        with pytest.raises(ConfigError, match="not a regular file|cannot read"):
            load_yaml(path)
    finally:
        signal.alarm(0)


# ---------------------------------------------------------------- generate options
@pytest.fixture(scope="module")
def problem_store(tmp_path_factory):
    from curate.records import Problem

    st = TraceStore(tmp_path_factory.mktemp("gen") / "st")
    st.add_problems([Problem(source="unit", domain="math", prompt=f"q{i}", reference=str(i)) for i in range(3)])
    return st


@pytest.mark.parametrize("args, needle", [
    (["--temperature", "nan"], "temperature must be a finite number"),
    (["--temperature", "inf"], "temperature must be a finite number"),
    (["--min-p", "nan"], "min_p must be a finite number"),
    (["--limit", "-1"], "--limit must be >= 1"),
    (["--limit", "0"], "--limit must be >= 1"),
    (["--option", "wrong_share=nan"], "expected a finite float"),
    (["--backend", "openai", "--model", "m", "--option", "timeout_s=inf"], "expected a finite float"),
    (["--backend", "openai", "--model", "m", "--option", "extra_body=" + "[" * 50_000], "extra_body"),
    (["--backend", "openai", "--model", "m", "--option", 'extra_body={"temperature": 1.5, "model": "other"}'],
     "extra_body may not set model, temperature"),
])
def test_generate_refuses_options_that_would_crash_or_misrecord(problem_store, args, needle):
    before = problem_store.counts()
    r = curate(problem_store.path.parent, "generate", "--store", str(problem_store.path), "--no-progress", *args)
    one_error_line(r, needle)
    assert problem_store.counts() == before


def test_generate_with_a_limit_takes_that_many_problems(problem_store):
    from curate.generate import RunConfig, SamplingParams, generate

    rep = generate(problem_store, None, "synthetic", None, sampling=SamplingParams(),
                   run_config=RunConfig(limit=2), dry_run=True, progress=False)
    assert rep.problems == 2


def test_generate_n_past_the_limit_is_refused_before_planning(problem_store):
    import time

    t = time.monotonic()
    r = curate(problem_store.path.parent, "generate", "--store", str(problem_store.path), "--n", "1000000000", "--dry-run")
    one_error_line(r, "--n must be between 1 and 65,536")
    assert time.monotonic() - t < 60


def test_a_run_planning_too_many_samples_asks_for_shards(problem_store, monkeypatch):
    from curate.errors import InputError
    from curate.generate import RunConfig, SamplingParams, generate, runner

    monkeypatch.setattr(runner, "MAX_PLANNED", 5)
    with pytest.raises(InputError, match="more than one run plans") as e:
        generate(problem_store, None, "synthetic", None, sampling=SamplingParams(), run_config=RunConfig(n=2),
                 dry_run=True, progress=False)
    assert "--shard" in e.value.hint


@pytest.mark.parametrize("text, needle", [
    ("name: x\n<<: {name: y}\n", "merge keys"),
    ("name: x\nsize: 1\n<<: [{size: 2}, {size: 3}]\n", "merge keys"),
    ("name: x\x00\n", "unacceptable character #x0000"),
    ("name: \x1b[31mx\n", "unacceptable character #x001b"),
    ("sources: [" + ", ".join(["1"] * 1_000_000) + "]\n", "more than 20,000 values"),
])
def test_yaml_merge_keys_control_characters_and_huge_lists_are_one_line_and_quick(tmp_path, text, needle):
    import time

    (tmp_path / "r.yaml").write_text(text)
    t = time.monotonic()
    one_error_line(curate(tmp_path, "recipes", "validate", "r.yaml"), "r.yaml", needle)
    assert time.monotonic() - t < 30


def test_set_value_with_a_control_character_is_one_line():
    from curate.config import parse_set
    from curate.errors import ConfigError

    with pytest.raises(ConfigError, match="malformed YAML"):
        parse_set("train.lr=\x00")


def test_a_file_that_is_no_recipe_is_not_echoed_back(tmp_path):
    (tmp_path / "passwords").write_text("alice: s3cret-one\nbob: s3cret-two\ncarol: s3cret-three\n")
    line = one_error_line(curate(tmp_path, "recipes", "validate", "passwords"), "none of its 3 top-level keys")
    assert "alice" not in line and "s3cret" not in line


def test_many_unknown_keys_are_counted_not_listed(tmp_path):
    text = (ROOT / "recipes" / "countdown-toy.yaml").read_text()
    (tmp_path / "r.yaml").write_text(text + "".join(f"extra_key_{i}_{'x' * 80}: 1\n" for i in range(20)))
    line = one_error_line(curate(tmp_path, "recipes", "validate", "r.yaml"), "and 15 more")
    assert line.count("unknown key") == 5 and "x" * 70 not in line
