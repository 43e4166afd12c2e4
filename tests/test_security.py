"""Hostile SQL, recipes and configs, tried as an attacker would, through the real CLI (subprocess).

Every attack must end with a non-zero exit and one `error:` line naming the file/field or statement, no
traceback, no file written anywhere (cwd, HOME, the store, the output dir), no host text in any output,
and an unchanged store. The reported cases run as `python -m curate`; further variants run in this
process (same sandbox: empty cwd and HOME, the same checks) so the file stays quick. Legitimate use
(subqueries in predicates, CTEs and window functions, --json and --csv) keeps working.
Run: python -m pytest -q tests/test_security.py
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curate.errors import ConfigError, StoreError
from curate.records import Problem, Sample, Verdict
from curate.store import TraceStore
from curate.store.sqlcheck import check_statement, predicate_problem
from tests.helpers import ROOT

SECRET = "HOSTSECRET-7f3a9c"
MARKUP = ":x: [bold]B[/bold] pip install 'curate[vllm]'"
ENDLESS = "SELECT count(*) FROM range(100000000) a, range(100000000) b WHERE a.range + b.range = -1"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small labelled store, and a host file holding a secret."""
    base = tmp_path_factory.mktemp("sec")
    secret = base / "host" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(f"{SECRET}\n{SECRET},{SECRET}\n")
    st = TraceStore(base / "store")
    probs = [Problem(source="unit", domain="math", prompt=f"question {i} {MARKUP}", reference=str(i)) for i in range(4)]
    st.add_problems(probs)
    samples = [Sample(problem_id=p.id, text=f"<think>t</think> \\boxed{{{i}}} {MARKUP}", backend="synthetic", model="m",
                      params={"t": 0.6}, sample_index=k, finish_reason="stop", completion_tokens=10)
               for i, p in enumerate(probs) for k in range(2)]
    st.add_samples(samples)
    st.add_verdicts([Verdict(sample_id=s.id, verifier="math", version="1", status="correct", score=1.0) for s in samples])
    return {"base": base, "store": base / "store", "secret": secret}


def _tree(d: Path) -> dict:
    if not d.exists():
        return {}
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(d.rglob("*"))}


class Sandbox:
    """An empty cwd and HOME, and a record of every watched directory to compare after an attack."""

    def __init__(self, world, tmp_path: Path) -> None:
        self.world = world
        self.cwd, self.home, self.out = tmp_path / "cwd", tmp_path / "home", tmp_path / "out"
        for d in (self.cwd, self.home):
            d.mkdir()
        self.watched = [self.cwd, self.home, self.out, world["store"], world["secret"].parent]
        self.before = {str(d): _tree(d) for d in self.watched}

    def env(self, **extra) -> dict:
        return {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "HOME": str(self.home),
                "CURATE_STORE": str(self.world["store"]), **extra}

    def run(self, *args: str, timeout: float = 120, **env) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "curate", *args], capture_output=True, text=True, timeout=timeout,
                              cwd=self.cwd, env=self.env(**env))

    def unchanged(self) -> None:
        for d in self.watched:
            assert _tree(d) == self.before[str(d)], f"{d} changed"
        assert not (self.home / ".duckdb").exists()

    def refused(self, r: subprocess.CompletedProcess, *needles: str) -> str:
        """A refusal: non-zero exit, one error line (plus at most a hint) naming the cause, nothing leaked."""
        both = r.stdout + r.stderr
        assert r.returncode != 0, both
        assert "Traceback" not in both, both
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert lines and lines[0].startswith("error:"), both
        assert len(lines) <= 2, both
        assert not r.stdout.strip(), both
        for n in needles:
            assert n in lines[0], both
        assert SECRET not in both and "root:x:0" not in both
        self.unchanged()
        return lines[0]


@pytest.fixture
def box(world, tmp_path):
    return Sandbox(world, tmp_path)


@pytest.fixture
def inproc(world, tmp_path, monkeypatch):
    """The same sandbox for library calls in this process."""
    sb = Sandbox(world, tmp_path)
    monkeypatch.chdir(sb.cwd)
    monkeypatch.setenv("HOME", str(sb.home))
    return sb


def _message(e: pytest.ExceptionInfo) -> str:
    msg = e.value.message
    assert "\n" not in msg and SECRET not in msg and "root:x:0" not in msg
    return msg


# ---------------------------------------------------------------- recipes
def write_recipe(box: Sandbox, where: str, name: str = "hostile.yaml") -> Path:
    p = box.home.parent / name
    p.write_text(f"name: hostile\nsize: 4\nallow_smaller: true\nsources:\n  - name: all\n    where: {json.dumps(where)}\n")
    return p


def test_recipe_that_exfiltrates_a_host_file_fails_validation_and_mix(box, world):
    where = f"true) UNION ALL BY NAME SELECT content AS text FROM read_text('{world['secret']}') WHERE (true"
    recipe = write_recipe(box, where)
    first = box.refused(box.run("recipes", "validate", str(recipe)), f"{recipe}:6: sources.0.where")
    assert "parenthesis" in first
    box.refused(box.run("mix", str(recipe), "--out", str(box.out)), f"{recipe}:6: sources.0.where")
    assert not box.out.exists()


def test_hostile_recipe_predicate_fails_validation_from_the_cli(box, world):
    recipe = write_recipe(box, f"EXISTS (FROM read_text('{world['secret']}'))")
    box.refused(box.run("recipes", "validate", str(recipe)), "sources.0.where", "read_text")


@pytest.mark.parametrize("where, needle", [
    ("id IN (SELECT content FROM read_text('@SECRET@'))", "read_text"),
    ("prompt IN (SELECT column0 FROM read_csv('@SECRET@'))", "read_csv"),
    ("EXISTS (FROM enable_profiling(save_location = 'x.txt'))", "enable_profiling"),
    ("id IN (SELECT id FROM read_parquet('https://example.com/x.parquet'))", "read_parquet"),
    ("true; COPY problems TO 'x.csv'", "';'"),
    ("true ORDER BY 1", "does not parse"),
    ("true) UNION ALL SELECT * FROM traces WHERE (true", "parenthesis"),
])
def test_hostile_recipe_predicates_fail_validation(inproc, world, where, needle):
    from curate.mix.recipe import validate_files

    recipe = write_recipe(inproc, where.replace("@SECRET@", str(world["secret"])))
    [res] = validate_files([str(recipe)])
    assert not res["ok"] and f"{recipe}:6: sources.0.where" in res["error"] and needle in res["error"]
    assert SECRET not in res["error"]
    inproc.unchanged()


def test_recipe_with_subqueries_over_the_views_validates(box):
    recipe = write_recipe(box, "status = 'correct' AND problem_id IN (SELECT id FROM problems WHERE split = 'train') "
                               "AND EXISTS (SELECT 1 FROM verdicts v WHERE v.sample_id = id)")
    r = box.run("recipes", "validate", str(recipe))
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr


# ---------------------------------------------------------------- YAML
ALIAS_BOMB = ("name: bomb\nsize: 1\nsources: [{name: a}]\n" + "a0: &a0 [lol, lol]\n"
              + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)))  # 10^9 strings


@pytest.mark.parametrize("text, needle", [
    (ALIAS_BOMB, "r.yaml:4: a0: YAML anchors"),
    ("name: big\nsize: " + "9" * 5000 + "\nsources: [{name: a}]\n", "r.yaml:2: size: a number of 5,000 characters"),
    ("name: dup\nsize: 1\nsources: [{name: a}]\nseed: 1\nseed: 2\n", "r.yaml:5: seed: duplicate key (first at line 4)"),
])
def test_hostile_yaml_is_one_line(box, text, needle):
    recipe = box.home.parent / "r.yaml"
    recipe.write_text(text)
    started = time.monotonic()
    box.refused(box.run("recipes", "validate", str(recipe), timeout=60), needle)
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("text, needle", [
    ("name: dup\nsize: 1\nsources:\n  - name: a\n    where: \"true\"\n    where: \"false\"\n",
     "r.yaml:6: sources.0.where: duplicate key (first at line 5)"),
    ("name: dup\n1: a\n'1': b\nsize: 1\n", "r.yaml:3: 1: duplicate key"),
    ("name: x\nsize: 1\nsources: [{name: a}]\nmeta: !!python/object/apply:os.system ['touch pwned']\n", "r.yaml:4"),
    ("name: x\nsize: 1\nsources: [{name: a}]\n" + "n: " + "[" * 200 + "]" * 200 + "\n", "nested more than 64"),
    ("name: x\nsize: 1\nsources: [{name: a, <<: *missing}]\n", "r.yaml:3: sources.0.<<: YAML anchors"),
    ("name: x\nsize: 1\n---\nname: y\n", "single document"),
    ("seed: 1." + "9" * 80 + "\n", "a number of 82 characters"),
])
def test_more_hostile_yaml_in_process(inproc, text, needle):
    from curate.mix.recipe import load_recipe

    recipe = inproc.home.parent / "r.yaml"
    recipe.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_recipe(recipe)
    assert needle in _message(e)
    inproc.unchanged()


def test_train_config_uses_the_same_loader(tmp_path):
    from curate.train.config import load_config

    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: &m {name: x}\ncopy: *m\n")
    with pytest.raises(ConfigError, match=r"c.yaml:1: model: YAML anchors"):
        load_config(cfg)
    cfg.write_text("train:\n  lr: 1\n  lr: 2\n")
    with pytest.raises(ConfigError, match=r"c.yaml:3: train.lr: duplicate key"):
        load_config(cfg)


def test_sweep_values_use_the_same_rules():
    from curate.mix.recipe import parse_sweep_option

    with pytest.raises(ConfigError, match="--sweep seed: a number of 5,000 characters"):
        parse_sweep_option("seed=1," + "9" * 5000)
    assert parse_sweep_option("quality.incorrect_fraction=0,0.5") == ("quality.incorrect_fraction", [0, 0.5])


# ---------------------------------------------------------------- curate sql
@pytest.mark.parametrize("sql, needle", [
    ("COPY (SELECT * FROM traces) TO '@HOME@/dump.parquet'", "COPY"),
    ("EXPORT DATABASE 'exported'", "EXPORT"),
    ("ATTACH 'x.duckdb' (READ_WRITE)", "ATTACH"),
    ("ATTACH 'x.duckdb'; CREATE TABLE x.t AS SELECT 1", "2 statements"),
    ("SET profiling_output = 'p.txt'", "SET"),
    ("PRAGMA profiling_output = 'p.txt'", "PRAGMA"),
    ("SET memory_limit = '1TB'", "SET"),
    ("INSTALL httpfs", "LOAD"),
    ("SELECT * FROM read_text('@SECRET@')", "Permission Error"),
])
def test_sql_cannot_write_read_host_files_or_change_settings(box, world, sql, needle):
    sql = sql.replace("@SECRET@", str(world["secret"])).replace("@HOME@", str(box.home))
    box.refused(box.run("sql", sql), needle)


@pytest.mark.parametrize("sql, needle", [
    ("COPY problems TO 'x.csv'", "COPY"),
    ("LOAD httpfs", "LOAD"),
    ("CALL enable_profiling()", "CALL"),
    ("EXPLAIN ANALYZE COPY problems TO 'x.csv'", "EXPLAIN of a COPY"),
    ("SELECT 1; SELECT 2", "2 statements"),
    ("CREATE TEMP TABLE t AS SELECT 1", "CREATE"),
    ("SELECT * FROM read_csv('@SECRET@')", "Permission Error"),
    ("SELECT * FROM read_blob('/etc/passwd')", "Permission Error"),
    ("SELECT * FROM glob('@HOME@/*')", "Permission Error"),
    ("SELECT * FROM read_parquet('https://example.com/x.parquet')", "Permission Error"),
    ("SELECT * FROM sqlite_scan('x.db', 't')", "sqlite_scan"),
    ("SELECT * FROM enable_profiling(save_location = 'p.txt')", "locked"),
    ("SELECT * FROM query('COPY problems TO ''x.csv''')", "SELECT"),
    ("SELECT * FROM os", "os"),  # no Python replacement scan of the caller's modules
    ("SELECT * FROM read_text('@SHARDS@/../../host/secret.txt')", "Permission Error"),  # allowed paths are exact files
])
def test_sql_attacks_in_process(inproc, world, sql, needle):
    sql = (sql.replace("@SECRET@", str(world["secret"])).replace("@HOME@", str(inproc.home))
           .replace("@SHARDS@", str(world["store"] / "shards")))
    with pytest.raises(StoreError) as e:
        TraceStore(world["store"]).query(sql)
    assert needle in _message(e)
    inproc.unchanged()


def test_sql_runs_with_the_configured_memory_limit_and_threads(box):
    r = box.run("sql", "SELECT current_setting('memory_limit') AS m, current_setting('threads') AS t, "
                "current_setting('enable_external_access') AS ext, current_setting('autoinstall_known_extensions') AS ai, "
                "current_setting('lock_configuration') AS locked", "--json",
                CURATE_SQL_MEMORY="256MB", CURATE_SQL_THREADS="1")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)[0]
    assert row["m"] == "244.1 MiB" and int(row["t"]) == 1 and row["ext"] is False and row["ai"] is False and row["locked"] is True
    box.unchanged()


def test_query_past_the_memory_limit_is_one_line(box):
    r = box.run("sql", "SELECT max(len(l)) AS n FROM (SELECT list(range) AS l FROM range(30000000))",
                CURATE_SQL_MEMORY="32MB", CURATE_SQL_THREADS="1")
    box.refused(r, "Out of Memory")
    assert "CURATE_SQL_MEMORY" in r.stderr


def test_query_past_its_time_limit_stops_with_one_line(box):
    started = time.monotonic()
    line = box.refused(box.run("sql", ENDLESS, CURATE_SQL_TIMEOUT="1", CURATE_SQL_THREADS="1"), "query stopped after 1s")
    assert time.monotonic() - started < 60, line


def _cpu_off_main(pid: int) -> float:
    """CPU seconds used by the threads of `pid` other than its main thread (Linux /proc)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        if task.name != str(pid):
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # the thread ended meanwhile
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads thread CPU times from /proc")
@pytest.mark.parametrize("sig, code, needle", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_signal_interrupts_a_running_query_with_one_line(box, sig, code, needle):
    p = subprocess.Popen([sys.executable, "-m", "curate", "sql", ENDLESS], cwd=box.cwd,
                         env=box.env(CURATE_SQL_THREADS="2", CURATE_SQL_TIMEOUT="300"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The query is running once threads other than the main one burn CPU (imports and setup run on main).
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and p.poll() is None and _cpu_off_main(p.pid) < 0.5:
        time.sleep(0.1)
    assert p.poll() is None, p.communicate()
    sent = time.monotonic()
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    assert time.monotonic() - sent < 15
    box.refused(subprocess.CompletedProcess(p.args, p.returncode, out, err), "query interrupted", needle)
    assert p.returncode == code


def test_legitimate_sql_keeps_working(box):
    q = ("WITH per AS (SELECT problem_id, count(*) AS n FROM traces GROUP BY problem_id) "
         "SELECT problem_id, n, row_number() OVER (ORDER BY problem_id) AS r FROM per ORDER BY problem_id")
    r = box.run("sql", q, "--json")
    assert r.returncode == 0, r.stderr
    assert [(row["n"], row["r"]) for row in json.loads(r.stdout)] == [(2, 1), (2, 2), (2, 3), (2, 4)]
    r = box.run("sql", "SELECT count(*) AS n FROM traces WHERE problem_id IN (SELECT id FROM problems)", "--csv")
    assert r.stdout.splitlines() == ["n", "8"]
    box.unchanged()


def test_legitimate_statements_in_process(inproc, world):
    st = TraceStore(world["store"])
    for q in ("DESCRIBE traces", "SHOW TABLES", "EXPLAIN SELECT * FROM traces", "EXPLAIN ANALYZE SELECT count(*) FROM traces",
              "SUMMARIZE problems", "FROM problems SELECT count(*)", "VALUES (1), (2)", "SELECT text FROM traces LIMIT 1",
              "SELECT 1;", "/* why */ SELECT 1 -- done"):
        assert st.query(q).num_rows >= 1, q
    texts = st.query("SELECT text FROM traces").column("text").to_pylist()
    assert len(texts) == 8 and all(MARKUP in t for t in texts)  # the shards stay readable
    inproc.unchanged()


def test_table_output_prints_data_literally(box):
    r = box.run("sql", "SELECT prompt, ':x: [red]red[/red]' AS \"[bold]col\" FROM problems ORDER BY prompt LIMIT 1")
    assert r.returncode == 0, r.stderr
    assert MARKUP in r.stdout and ":x: [red]red[/red]" in r.stdout and "[bold]col" in r.stdout
    box.unchanged()


def test_error_lines_and_hints_print_literally(box, tmp_path):
    line = box.refused(box.run("sql", "SELECT 1", "--store", str(tmp_path / "[bold]store:x:")))
    assert "[bold]store:x:" in line
    try:
        import vllm  # noqa: F401
        return
    except ImportError:
        pass
    r = box.run("generate", "--backend", "vllm", "--model", "m", "--limit", "1")
    assert "pip install 'curate[vllm]'" in r.stderr, r.stderr
    box.refused(r)


# ---------------------------------------------------------------- predicates of generate and verify
ORPHAN = ("false) UNION ALL SELECT 'orphan' AS id, 's' AS source, 'math' AS domain, 'p' AS prompt, '1' AS reference, "
          "'{}' AS metadata, 'train' AS split FROM (SELECT 1")


@pytest.mark.parametrize("pred, needle", [
    (ORPHAN, "parenthesis"),
    ("EXISTS (FROM enable_profiling(save_location = 'x.txt'))", "enable_profiling"),
])
def test_generate_problems_predicate_is_one_expression(box, pred, needle):
    box.refused(box.run("generate", "--problems", pred, "--backend", "synthetic", "--no-progress"),
                "predicate over `problems`", needle)


@pytest.mark.parametrize("pred, needle", [
    (ORPHAN + " --", "parenthesis"),
    ("false UNION ALL SELECT * FROM problems", "does not parse"),
    ("id IN (SELECT content FROM read_text('@SECRET@'))", "read_text"),
    ("id IN (SELECT id FROM read_parquet('https://example.com/p.parquet'))", "read_parquet"),
    ("id = $$ unterminated", "does not parse"),
])
def test_problem_predicates_in_process(inproc, world, pred, needle):
    with pytest.raises(ConfigError, match="predicate over `problems`") as e:
        TraceStore(world["store"]).problems(pred.replace("@SECRET@", str(world["secret"])))
    assert needle in _message(e)
    inproc.unchanged()


def test_verify_where_predicate_is_one_expression(box):
    pred = "EXISTS (FROM enable_profiling(save_location='x.txt'))"
    box.refused(box.run("verify", "--relabel", "--where", pred, "--workers", "1"), "predicate over `traces`", "enable_profiling")
    box.refused(box.run("verify", "--relabel", "--verifier", "math", "--where", "true) OR (true", "--workers", "1"),
                "predicate over `traces`", "parenthesis")


@pytest.mark.parametrize("verifier", [None, "math"])
@pytest.mark.parametrize("pred, needle", [
    ("true) OR (true", "parenthesis"),
    ("id IN (SELECT content FROM read_text('@SECRET@'))", "read_text"),
])
def test_label_predicates_in_process(inproc, world, verifier, pred, needle):
    from curate.label import label_store

    with pytest.raises(ConfigError, match="predicate over `traces`") as e:
        label_store(TraceStore(world["store"]), verifier=verifier, workers=1, relabel=True,
                    where=pred.replace("@SECRET@", str(world["secret"])))
    assert needle in _message(e)
    inproc.unchanged()


def test_predicates_with_subqueries_keep_working(world):
    st = TraceStore(world["store"])
    some = st.problems("id IN (SELECT problem_id FROM traces WHERE status = 'correct') AND prompt LIKE 'question 1%' -- a comment")
    assert len(some) == 1
    batches = list(st.unlabeled("math", "1", relabel=True,
                                where="problem_id IN (SELECT id FROM problems WHERE prompt LIKE 'question 2%')"))
    assert sum(len(b) for b in batches) == 2


# ---------------------------------------------------------------- the parser checks, as a table
@pytest.mark.parametrize("pred, ok", [
    ("split = 'train'", True),
    ("count(*) OVER () > 1", True),
    ("x IN (WITH a AS (SELECT 1) SELECT * FROM a)", True),
    ("x IN (SELECT 1 UNION SELECT 2)", True),  # a set operation inside a subquery stays inside it
    ("a = ')' AND b = '('", True),  # parentheses in strings are not tokens
    ("a -- ) trailing comment", True),
    ("a) OR (b", False),
    ("a) GROUP BY ALL HAVING (true", False),
    ("a) QUALIFY (true", False),
    ("a) WINDOW w AS (ORDER BY 1", False),
    ("a /* unterminated", False),
    ("$$ unterminated", False),
    ("a; DROP TABLE x", False),
    ("", False),
    ("id IN (SELECT * FROM glob('*'))", False),
    ("id IN (SELECT * FROM read_json_auto('x.json'))", False),
])
def test_predicate_check_table(pred, ok):
    assert (predicate_problem(pred, "traces") is None) == ok


def test_statement_check_rejects_writes_before_any_connection():
    for sql in ("UPDATE problem_rows SET prompt = 'x'", "DETACH curate", "USE memory", "CHECKPOINT", "VACUUM",
                "BEGIN", "CREATE MACRO m() AS 1", "SET VARIABLE v = 1", "EXPLAIN (FORMAT json) SELECT 1"):
        with pytest.raises(StoreError, match="read-only"):
            check_statement(sql)
