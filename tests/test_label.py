"""The labeler and `curate verify`: real store, real worker processes, resume after SIGKILL."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curate.errors import InputError, StoreError
from curate.label import label_store, plan
from curate.records import Problem, Sample
from curate.store import TraceStore
from tests.helpers import ROOT, capped_plugin, flaky_plugin, run_cli


def _fill(path: Path, n_countdown: int = 6, code_tests: int = 0) -> TraceStore:
    st = TraceStore(path)
    cd = [Problem("countdown", "game", f"Numbers: [{i}, 2, 3]\nTarget: {i + 5}", {"numbers": [i, 2, 3], "target": i + 5})
          for i in range(1, n_countdown + 1)]
    mth = Problem("math500", "math", "What is 1/2 + 1/4?", "\\frac{3}{4}")
    odd = Problem("poems", "poetry", "Write a poem.", None)
    code = [Problem("livecodebench", "code", f"Print the double of n ({i}).",
                    {"tests": [{"input": f"{i}\n", "output": f"{2 * i}\n"}], "timeout_s": 3})
            for i in range(code_tests)]
    st.add_problems(cd + [mth, odd] + code)
    samples = []
    for p in cd:
        a, b, c = p.reference["numbers"]
        samples.append(Sample(p.id, f"<think>try</think>\\boxed{{{a}+{b}+{c}}}", "synthetic", "dfs", sample_index=0))
        samples.append(Sample(p.id, f"<think>try</think>\\boxed{{{a}*{b}*{c}}}", "synthetic", "dfs", sample_index=1))
    samples.append(Sample(mth.id, "<think>1/2 = 2/4</think>So \\boxed{\\frac{3}{4}}", "synthetic", "m"))
    samples.append(Sample(odd.id, "Roses are red", "synthetic", "m"))
    for p in code:
        samples.append(Sample(p.id, "```python\nn = int(input())\nprint(2 * n)\n```", "synthetic", "c"))
    st.add_samples(samples)
    return st


def _verdicts(st: TraceStore) -> list[dict]:
    return st.query("SELECT sample_id, verifier, version, status FROM verdicts ORDER BY ALL").to_pylist()


def test_labels_by_source_and_domain_then_only_what_is_missing(tmp_path):
    st = _fill(tmp_path / "store")
    steps, unclaimed = plan(st, None, None)
    assert {name for name, _ in steps} == {"countdown", "math"}
    assert unclaimed == [{"source": "poems", "domain": "poetry", "verifier": None}]

    rep = label_store(st, workers=2, batch_size=4)
    assert rep.labeled == rep.written == 13
    assert dict(rep.by_verifier["countdown@1"]) == {"correct": 6, "incorrect": 6} or \
        sum(rep.by_verifier["countdown@1"].values()) == 12
    assert dict(rep.by_verifier["math@1"]) == {"correct": 1}
    rows = _verdicts(st)
    assert len(rows) == 13 and len({r["sample_id"] for r in rows}) == 13

    again = label_store(st, workers=2)
    assert again.labeled == 0 and _verdicts(st) == rows  # nothing missing, nothing done

    re = label_store(st, workers=1, relabel=True, where="source = 'math500'")
    assert re.labeled == 1 and len(_verdicts(st)) == 13  # replaced, not duplicated


def test_named_verifier_and_predicate(tmp_path):
    st = _fill(tmp_path / "store")
    rep = label_store(st, verifier="safety", where="domain = 'poetry'", workers=1)
    assert rep.labeled == 1 and _verdicts(st)[0]["status"] == "incorrect"
    with pytest.raises(InputError, match="unknown verifier"):
        label_store(st, verifier="nope")


def test_countdown_oracle_states_match_the_arithmetic(tmp_path):
    st = _fill(tmp_path / "store")
    label_store(st, verifier="countdown", where="source = 'countdown'", workers=2)
    rows = st.query("""SELECT t.sample_index, v.status FROM traces t JOIN verdicts v ON v.sample_id = t.id
                       WHERE t.source = 'countdown' ORDER BY t.prompt, t.sample_index""").to_pylist()
    # i + 2 + 3 == i + 5 always; i * 2 * 3 == i + 5 only for i = 1
    assert [r["status"] for r in rows if r["sample_index"] == 0] == ["correct"] * 6
    assert sum(r["status"] == "correct" for r in rows if r["sample_index"] == 1) == 1


def _cli(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "curate", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_cli_verify_json_and_errors(tmp_path):
    st = _fill(tmp_path / "store")
    p = _cli("verify", "--store", str(st.path), "--workers", "2", "--json")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    data = json.loads(out)
    assert data["labeled"] == 13 and data["unclaimed"] == [{"source": "poems", "domain": "poetry", "verifier": None}]
    p = _cli("verify", "--store", str(st.path), "--verifier", "nope")
    out, err = p.communicate(timeout=120)
    assert p.returncode != 0 and "unknown verifier 'nope'" in err and "Traceback" not in err
    with pytest.raises(StoreError, match="SQL error"):  # a bad predicate is one typed error, mapped by the CLI
        label_store(st, where="no_such_column = 1")
    p = _cli("verifiers", "list", "--json")
    out, err = p.communicate(timeout=60)
    assert {"math", "code", "countdown"} <= {r["name"] for r in json.loads(out)}


def test_kill_mid_run_loses_at_most_one_batch_and_resumes(tmp_path):
    st = _fill(tmp_path / "store", n_countdown=1, code_tests=40)
    p = _cli("verify", "--store", str(st.path), "--verifier", "code", "--where", "domain = 'code'",
             "--workers", "2", "--batch-size", "5", start_new_session=True)
    deadline = time.monotonic() + 60
    written = 0
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            written = st.query("SELECT count(*) AS n FROM verdicts").to_pylist()[0]["n"]
        except Exception:  # the writer holds the lock for a moment
            continue
        if written >= 10:
            break
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)
    after_kill = st.query("SELECT count(*) AS n FROM verdicts").to_pylist()[0]["n"]
    assert 10 <= after_kill < 40 and after_kill % 5 == 0  # whole batches only
    rep = label_store(st, verifier="code", where="domain = 'code'", workers=2)
    assert rep.labeled == 40 - after_kill  # only what was missing
    rows = _verdicts(st)
    assert len(rows) == 40 and {r["status"] for r in rows} == {"correct"}


def test_metadata_verifier_wins_and_unknown_names_are_reported(tmp_path):
    st = TraceStore(tmp_path / "store")
    # arithmetic from reasoning-gym lands in domain "math", but names its verifier: it must not go to `math`
    import reasoning_gym

    entry = reasoning_gym.create_dataset("chain_sum", size=1, seed=5)[0]
    rg = Problem("reasoning-gym/chain_sum", "math", entry["question"],
                 {"task": "chain_sum", "question": entry["question"], "answer": entry["answer"], "metadata": {}},
                 metadata={"verifier": "reasoning-gym"})
    odd = Problem("mystery", "math", "2+2?", "4", metadata={"verifier": "oracle_of_delphi"})
    plain = Problem("mystery", "math", "3+3?", "6")
    st.add_problems([rg, odd, plain])
    st.add_samples([Sample(rg.id, f"<think>add</think>\\boxed{{{entry['answer']}}}", "s", "m"),
                    Sample(odd.id, "\\boxed{4}", "s", "m"), Sample(plain.id, "\\boxed{6}", "s", "m")])
    rep = label_store(st, workers=1)
    assert dict(rep.by_verifier["reasoning_gym@1"]) == {"correct": 1}
    assert dict(rep.by_verifier["math@1"]) == {"correct": 1}  # the plain one, by domain
    assert rep.unclaimed == [{"source": "mystery", "domain": "math", "verifier": "oracle_of_delphi"}]


# ---------------------------------------------------------------- labels never lie

HUMANEVAL_PROMPT = 'def add3(x: int) -> int:\n    """Return x plus three."""\n'


def _code_store(path: Path, broken: int = 0) -> TraceStore:
    """Correct HumanEval-style and stdin/stdout traces, plus `broken` problems whose reference cannot be run."""
    st = TraceStore(path)
    fn = Problem("humaneval", "code", HUMANEVAL_PROMPT, {"test": "def check(c):\n    assert c(2) == 5\n",
                                                       "entry_point": "add3", "prompt": HUMANEVAL_PROMPT, "timeout_s": 3})
    io = Problem("livecodebench", "code", "Double n.", {"tests": [{"input": "4\n", "output": "8\n"}], "timeout_s": 3})
    bad = [Problem("livecodebench", "code", f"Broken reference {i}.", {"tests": []}) for i in range(broken)]
    st.add_problems([fn, io, *bad])
    st.add_samples([Sample(fn.id, "<think>add</think>```python\ndef add3(x):\n    return x + 3\n```", "s", "m"),
                    Sample(io.id, "<think>double</think>```python\nprint(2 * int(input()))\n```", "s", "m")]
                   + [Sample(p.id, "```python\nprint(1)\n```", "s", "m") for p in bad])
    return st


def test_a_closed_tmpdir_never_labels_correct_code_incorrect(tmp_path):
    """TMPDIR as `mktemp -d` makes it: mode 700, owned by the caller, closed to the sandbox user."""
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    st = _code_store(tmp_path / "store")
    out = run_cli("verify", "--store", str(st.path), "--workers", "1", "--json", env={"TMPDIR": str(closed)})
    assert out.returncode == 0, out.stderr
    assert {r["status"] for r in _verdicts(st)} == {"correct"} and len(_verdicts(st)) == 2


def test_a_failing_self_test_stops_labeling_and_stores_nothing_wrong(tmp_path):
    env = flaky_plugin(tmp_path)
    st = TraceStore(tmp_path / "store")
    probs = [Problem("flaky", "flaky", f"Say ok ({i}).", "ok") for i in range(12)]
    st.add_problems(probs)
    st.add_samples([Sample(p.id, "BREAK" if i == 7 else "ok", "s", "m") for i, p in enumerate(probs)])

    (tmp_path / "broken").touch()  # broken from the start: the first self-test fails, nothing is judged
    out = run_cli("verify", "--store", str(st.path), "--workers", "1", "--batch-size", "3", env=env)
    assert out.returncode != 0 and _verdicts(st) == []
    line = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and "'flaky'" in line[0] and "'says ok'" in line[0] and "environment broke" in line[0]
    assert "Traceback" not in out.stderr

    (tmp_path / "broken").unlink()  # breaks mid-run, at the sample BREAK
    out = run_cli("verify", "--store", str(st.path), "--workers", "1", "--batch-size", "3", env=env)
    assert out.returncode != 0 and "failed its self-test" in out.stderr
    assert [ln.split(":")[0] for ln in out.stderr.splitlines()] == ["error", "hint"], out.stderr  # no bar left over
    rows = _verdicts(st)
    assert len(rows) % 3 == 0 and len(rows) < 12  # whole batches that passed the self-test after them
    assert {r["status"] for r in rows} <= {"correct"}  # nothing from the failed stretch, nothing wrong


def test_a_verifier_capped_at_one_worker_leaves_the_others_every_worker(tmp_path):
    """A reward model asks for one process (one copy of its model); the other verifiers of the same run still
    get all of --workers, each judged in its own pool."""
    plug = tmp_path / "plugin"
    capped_plugin(plug)
    st = TraceStore(tmp_path / "store")
    probs = [Problem(d, d, f"Say ok ({i}).", "ok") for d in ("one_copy", "any_copy") for i in range(8)]
    st.add_problems(probs)
    st.add_samples([Sample(p.id, "ok", "s", "m") for p in probs])
    out = run_cli("verify", "--store", str(st.path), "--workers", "2", "--batch-size", "8", "--json",
                  env={"PYTHONPATH": f"{ROOT}:{plug}"})
    assert out.returncode == 0, out.stderr
    pids = {name: {r["reason"] for r in st.query(f"SELECT reason FROM verdicts WHERE verifier = '{name}'").to_pylist()}
            for name in ("one_copy", "any_copy")}
    assert len(pids["one_copy"]) == 1 and len(pids["any_copy"]) == 2
    assert json.loads(out.stdout)["labeled"] == 16


def test_every_pool_self_tests_before_any_pool_labels(tmp_path):
    """A capped verifier's pool labels first (its problems come first in the plan); a broken verifier in the
    other pool still stops the run before anything is judged."""
    env = flaky_plugin(tmp_path)
    capped_plugin(Path(env["PYTHONPATH"].split(":")[-1]))
    st = TraceStore(tmp_path / "store")
    probs = [Problem("aaa", "one_copy", f"Say ok ({i}).", "ok") for i in range(4)]
    probs += [Problem("zzz", "flaky", f"Say ok ({i}).", "ok") for i in range(4)]
    st.add_problems(probs)
    st.add_samples([Sample(p.id, "ok", "s", "m") for p in probs])
    (tmp_path / "broken").touch()
    out = run_cli("verify", "--store", str(st.path), "--workers", "2", env=env)
    assert out.returncode != 0 and "'flaky' failed its self-test" in out.stderr, out.stderr
    assert _verdicts(st) == []
    (tmp_path / "broken").unlink()
    out = run_cli("verify", "--store", str(st.path), "--workers", "2", "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert len(_verdicts(st)) == 8 and json.loads(out.stdout)["verifiers"][0] == "one_copy"


def test_verify_prints_the_status_distribution_and_fails_above_the_error_share(tmp_path):
    st = _code_store(tmp_path / "store", broken=1)
    out = run_cli("verify", "--store", str(st.path), "--workers", "1")
    assert out.returncode == 1, out.stderr
    assert "status distribution per verifier" in out.stdout and "code@1" in out.stdout
    assert "2 (66.7%)" in out.stdout and "1 (33.3%)" in out.stdout  # correct, error
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "--max-error-share 1.0%" in errors[0] and "code@1: 33.3% errors (1 of 3)" in errors[0]

    out = run_cli("verify", "--store", str(st.path), "--relabel", "--max-error-share", "0.5", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["by_verifier"]["code@1"] == {"correct": 2, "error": 1}
    assert abs(data["error_share"]["code@1"] - 1 / 3) < 1e-6 and data["self_tests"] == 2


def test_the_no_verdicts_hint_names_the_command_that_labels(tmp_path):
    from curate.mix.build import build
    from curate.mix.recipe import validate_recipe

    st = _fill(tmp_path / "store")
    recipe = validate_recipe({"name": "t", "seed": 1, "size": 2, "sources": [{"name": "cd", "where": "source = 'countdown'"}]})
    with pytest.raises(StoreError, match="no verdicts") as e:
        build(st, recipe)
    assert "`curate verify`" in e.value.hint
    assert "verify" in run_cli("verify", "--help").stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox user nobody exists only when curate runs as root")
def test_an_unusable_sandbox_stops_before_labeling_with_one_line(tmp_path):
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    (closed / "python3").symlink_to("/usr/bin/python3")
    st = _code_store(tmp_path / "store")
    for env, says in (({"CURATE_SANDBOX_ROOT": str(closed / "root")}, f"is closed to nobody); chmod o+x the directories above {closed}"),
                      ({"CURATE_SANDBOX_PYTHON": str(closed / "python3")}, "cannot be run by the sandbox user nobody")):
        out = run_cli("verify", "--store", str(st.path), "--workers", "1", env=env)
        errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
        assert out.returncode == 1 and len(errors) == 1, out.stderr
        assert "verifier 'code' failed its self-test" in errors[0] and says in errors[0]
        assert _verdicts(st) == []


def test_each_verifier_announces_how_many_samples_it_will_judge(tmp_path):
    """The progress total `curate verify` shows: the planned count per verifier, before judging starts."""
    st = _fill(tmp_path / "store")
    planned: dict[str, int] = {}
    done: dict[str, int] = {}
    rep = label_store(st, workers=1, batch_size=4, planned=lambda n, name: planned.__setitem__(name, n),
                      progress=lambda n, name: done.__setitem__(name, done.get(name, 0) + n))
    assert planned == {"countdown": 12, "math": 1} == done and rep.labeled == 13
    planned.clear()
    label_store(st, workers=1, planned=lambda n, name: planned.__setitem__(name, n))
    assert planned == {"countdown": 0, "math": 0}


def test_problem_data_cannot_lift_the_operators_sandbox_caps(tmp_path):
    """A reference asking for 100000 s and 3000 MB runs under the caps passed to label_store (what `curate
    verify`'s cap options pass), and the verdict says it was clamped."""
    from curate.label import code_caps

    st = TraceStore(tmp_path / "store")
    p = Problem("livecodebench", "code", "Print 1.",
                {"tests": [{"input": "", "output": "1\n"}], "timeout_s": 100000, "memory_mb": 3000})
    st.add_problems([p])
    st.add_samples([Sample(p.id, "```python\nimport time\ntime.sleep(4)\nprint(1)\n```", "s", "m")])
    rep = label_store(st, verifier="code", workers=1, verifier_options=code_caps(max_timeout_s=1.5, max_memory_mb=512))
    assert dict(rep.by_verifier["code@1"]) == {"timeout": 1}
    reason = st.query("SELECT reason FROM verdicts").to_pylist()[0]["reason"]
    assert "timeout_s=100000 clamped to the operator's cap 1.5" in reason and "memory_mb=3000 clamped" in reason
    with pytest.raises(InputError):
        code_caps(max_timeout_s=0)


def test_a_solution_that_reads_the_tests_is_incorrect_through_curate_verify(tmp_path):
    st = TraceStore(tmp_path / "store")
    fn = Problem("humaneval", "code", HUMANEVAL_PROMPT, {"test": "def check(c):\n    assert c(2) == 5\n",
                                                       "entry_point": "add3", "prompt": HUMANEVAL_PROMPT, "timeout_s": 3})
    st.add_problems([fn])
    cheat = ("```python\ndef add3(x):\n    import re\n    src = open('test.py').read()\n"
             "    return int(re.search(r'== (\\d+)', src).group(1))\n```")
    st.add_samples([Sample(fn.id, cheat, "s", "m")])
    out = run_cli("verify", "--store", str(st.path), "--workers", "1", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["by_verifier"]["code@1"] == {"incorrect": 1}


def test_verify_code_caps_are_checked_options(tmp_path):
    """`curate verify --code-max-timeout-s/--code-max-memory-mb` reach the code verifier; nonsense is one line."""
    st = _fill(tmp_path / "store", n_countdown=1)
    bad = run_cli("verify", "--store", str(st.path), "--workers", "1", "--code-max-timeout-s", "0")
    assert bad.returncode == 2 and bad.stderr.startswith("error: the code sandbox's time cap must be positive"), bad.stderr
    ok = run_cli("verify", "--store", str(st.path), "--workers", "1", "--code-max-timeout-s", "2", "--code-max-memory-mb", "256")
    assert ok.returncode == 0, ok.stderr


def test_verify_options_reach_the_named_verifier_and_a_bad_one_is_one_line(tmp_path):
    """`curate verify --option NAME.KEY=VALUE` builds the reward model verifier from a tiny local model (typed
    values: batch_size is an int, the threshold a float; names spelled as the registry compares them); an unknown key, an unknown verifier and a refused value each stop the
    command with one line naming the option, before anything is judged."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from curate.generate.tiny import build_tiny_reward_model
    from verifiers.registry import get_verifier

    rm = build_tiny_reward_model(tmp_path / "rm")
    st = TraceStore(tmp_path / "store")
    probs = [Problem("alpacaeval", "chat", f"Say hello to {who}.", None) for who in ("Ann", "Bo", "Cy")]
    st.add_problems(probs)
    st.add_samples([Sample(p.id, f"<think>easy</think>Hello, {p.prompt[13:-1]}!", "s", "m") for p in probs])
    base = ("verify", "--store", str(st.path), "--verifier", "reward_model", "--workers", "2")
    for opts, line in ((["reward_model.modle=/x"], "error: verifier option reward_model.modle: verifier 'reward_model' "
                                                   "takes no option 'modle' (its options: batch_size, device, dtype"),
                       (["rewrd.model=/x"], "error: verifier option rewrd.model: unknown verifier 'rewrd'"),
                       ([f"reward_model.model={rm}", "reward_model.batch_size=0"], "error: verifier reward_model "
                                                                                   f"(model='{rm}', batch_size=0): batch_size must be >= 1"),
                       (["reward_model.model"], "error: --option expects key=value, got 'reward_model.model'")):
        bad = run_cli(*base, *(a for o in opts for a in ("--option", o)))
        errors = [ln for ln in bad.stderr.splitlines() if ln.startswith("error:")]
        assert bad.returncode == 2 and len(errors) == 1 and errors[0].startswith(line), bad.stderr
        assert "Traceback" not in bad.stderr
    assert _verdicts(st) == []

    ok = run_cli(*base, "--option", f"reward_model.model={rm}", "--option", "reward_model.batch_size=2",
                 "--option", "Reward-Model.threshold=-1000.0", "--json", timeout=300)
    assert ok.returncode == 0, ok.stderr
    version = get_verifier("reward_model", model=str(rm), threshold=-1000.0).version  # the threshold names the version
    assert json.loads(ok.stdout)["by_verifier"] == {f"reward_model@{version}": {"correct": 3}}
    rows = st.query("SELECT status, score FROM verdicts").to_pylist()
    assert len(rows) == 3 and all(r["status"] == "correct" and isinstance(r["score"], float) for r in rows)


def test_verifier_options_parse_typed_and_nested_and_the_operators_caps_win(tmp_path):
    from curate.cli.label import verifier_options

    assert verifier_options(["reward_model.batch_size=4", "harm_judge.backend_options.base_url=http://h:8000/v1",
                             "harm-judge.success_rating=4", "code.memory_mb="]) == {
        "reward_model": {"batch_size": 4},
        "harm_judge": {"backend_options": {"base_url": "http://h:8000/v1"}, "success_rating": 4},
        "code": {"memory_mb": ""}}
    st = _fill(tmp_path / "store", n_countdown=1)
    with pytest.raises(InputError, match="harm_judge.nope: verifier 'harm_judge' takes no option 'nope'"):
        label_store(st, workers=1, verifier_options={"harm_judge": {"nope": 1}})  # checked though harm_judge never runs
    assert _verdicts(st) == []

    # --code-max-timeout-s caps the sandbox even when --option asks the code verifier for more
    st = TraceStore(tmp_path / "code")
    p = Problem("livecodebench", "code", "Print 1.", {"tests": [{"input": "", "output": "1\n"}], "timeout_s": 100})
    st.add_problems([p])
    st.add_samples([Sample(p.id, "```python\nimport time\ntime.sleep(4)\nprint(1)\n```", "s", "m")])
    out = run_cli("verify", "--store", str(st.path), "--verifier", "code", "--workers", "1", "--json",
                  "--option", "code.max_timeout_s=100", "--option", "code.timeout_s=100", "--code-max-timeout-s", "1.5")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["by_verifier"]["code@1"] == {"timeout": 1}
    reason = st.query("SELECT reason FROM verdicts").to_pylist()[0]["reason"]
    assert "clamped to the operator's cap 1.5" in reason


def _one_countdown(path: Path) -> TraceStore:
    st = TraceStore(path)
    p = Problem("countdown", "game", "Numbers: [1, 2, 3]\nTarget: 6", {"numbers": [1, 2, 3], "target": 6})
    st.add_problems([p])
    st.add_samples([Sample(p.id, "<think>try</think>\\boxed{1+2+3}", "s", "m")])
    return st


def test_an_error_while_labeling_is_the_only_output(tmp_path):
    """An error raised once the command has started labeling is one `error:` line and its hint: no blank line
    from the progress bar before it; a run that succeeds writes nothing to stderr."""
    from verifiers.registry import names

    st = _one_countdown(tmp_path / "store")
    bad = run_cli("verify", "--store", str(st.path), "--verifier", "nope", "--workers", "1")
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "error: unknown verifier 'nope'; known: " + ", ".join(names()),
        "hint: `curate verifiers list` shows the registered verifiers"], bad.stderr

    missing = run_cli("verify", "--store", str(st.path), "--verifier", "reward_model", "--workers", "1")
    assert missing.returncode == 2 and missing.stderr.splitlines() == [
        "error: verifier reward_model: needs the reward model: option 'model' is not set (a local folder with a "
        "one-output sequence classifier)",
        "hint: set it with `curate verify --option reward_model.model=VALUE`"], missing.stderr

    typed = run_cli("verify", "--store", str(st.path), "--verifier", "reward_model", "--workers", "1",
                    "--option", "reward_model.model=org/reward", "--option", "reward_model.batch_size='4'")
    errors = [ln for ln in typed.stderr.splitlines() if ln.startswith("error:")]
    assert typed.returncode == 2 and len(errors) == 1, typed.stderr
    assert "batch_size='4' is of type str, not int" in errors[0] and "does not accept" not in errors[0]
    assert _verdicts(st) == []

    ok = run_cli("verify", "--store", str(st.path), "--verifier", "countdown", "--workers", "1")
    assert ok.returncode == 0 and ok.stderr == "", ok.stderr


def test_an_option_for_a_verifier_the_run_does_not_use_is_a_warning_naming_it(tmp_path):
    """`--option` for a verifier this run does not use is checked, labeled around, and named in one warning per
    verifier; the operator's `--code-max-*` caps and a used verifier with nothing left to judge are not warned about."""
    st = _one_countdown(tmp_path / "store")
    out = run_cli("verify", "--store", str(st.path), "--workers", "1", "--json", "--code-max-memory-mb", "512",
                  "--option", "reward_model.model=/no/such/rm", "--option", "Reward-Model.batch_size=2",
                  "--option", "countdown.use_all=true")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["verifiers"] == ["countdown"]
    assert out.stderr.splitlines() == [
        "warning: --option reward_model.model, reward_model.batch_size is not used: no stored problem is labeled by "
        "'reward_model' (this run uses countdown); name it with --verifier reward_model"], out.stderr

    again = run_cli("verify", "--store", str(st.path), "--workers", "1", "--verifier", "countdown",
                    "--code-max-timeout-s", "2", "--option", "countdown.use_all=true", "--option", "code.timeout_s=1")
    assert again.returncode == 0 and "0 new verdicts" in again.stdout, again.stderr
    assert again.stderr.splitlines() == [
        "warning: --option code.timeout_s is not used: this run labels with --verifier countdown only"], again.stderr
