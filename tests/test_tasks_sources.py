"""Problem sources other than Countdown: reasoning-gym, HF presets on local fixtures, HumanEval, files,
and the registry-wide check that every generated task's oracle answer passes its own scorer."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from curate.errors import InputError
from curate.store import TraceStore
from curate.tasks import TASKS, add_problems, iter_problems, list_tasks

FIX = Path(__file__).parent / "fixtures" / "tasks"


def load(source, **opts):
    size = opts.pop("size", None)
    return list(iter_problems(source, opts, size=size))


def test_registry_lists_every_source_with_options():
    names = {t["name"] for t in list_tasks()}
    assert {"countdown", "chain_sum", "reasoning_gym", "hf", "file", "humaneval", "math500", "aime24", "gpqa_diamond", "mmlu_pro",
            "livecodebench", "openr1_math", "numinamath", "hex_phi"} <= names
    assert all(t["options"] for t in list_tasks())


def test_reasoning_gym_by_name_config_seed_and_size():
    ps = list(iter_problems("reasoning-gym", {"task": "chain_sum", "task_config": '{"max_terms": 3}'}, size=5, seed=3))
    again = list(iter_problems("reasoning-gym", {"task": "chain_sum", "task_config": '{"max_terms": 3}'}, size=5, seed=3))
    assert [p.id for p in ps] == [p.id for p in again] and len({p.id for p in ps}) == 5
    assert ps[0].source == "reasoning_gym/chain_sum" and ps[0].domain == "math"
    assert ps[0].reference["answer"] and ps[0].metadata["index"] == 0
    with pytest.raises(InputError, match="unknown reasoning-gym task"):
        list(iter_problems("reasoning-gym", {"task": "no_such_task"}, size=1))
    with pytest.raises(InputError, match="task_config"):
        list(iter_problems("reasoning-gym", {"task": "chain_sum", "task_config": '{"bogus": 1}'}, size=1))


@pytest.mark.parametrize("task", ["chain_sum", "basic_arithmetic", "word_sorting", "maze"])
def test_generated_oracles_pass_their_scorer(task):
    """Registry-wide: the oracle answer of every generated task passes the task's own scorer."""
    import reasoning_gym

    from curate.tasks.countdown import check_answer

    for p in iter_problems("countdown", {"max_numbers": 5}, size=20, seed=9):
        ans = TASKS["countdown"].oracle(p)
        assert check_answer(ans[len("\\boxed{"):-1], p.reference["numbers"], p.reference["target"])[0]
    for p in iter_problems("reasoning-gym", {"task": task}, size=5, seed=1):
        entry = {"question": p.reference["question"], "answer": p.reference["answer"], "metadata": p.reference["metadata"]}
        assert TASKS["reasoning_gym"].oracle(p) == f"<answer>{p.reference['answer']}</answer>"
        score = reasoning_gym.get_score_answer_fn(task)(p.reference["answer"], entry)
        assert score == 1.0, (task, p.reference)


def test_every_generated_task_with_a_verifier_passes_it_with_its_oracle():
    """Registry-wide: a generated task that names a verifier and has an oracle gets `correct` from that verifier."""
    from verifiers.registry import get_verifier

    checked = []
    for name, spec in sorted(TASKS.items()):
        if not (spec.generated and spec.oracle and spec.verifier) or name == "reasoning_gym":  # rgym: per task above
            continue
        v = get_verifier(spec.verifier)
        for p in iter_problems(name, {"max_numbers": 4} if name == "countdown" else {}, size=10, seed=5):
            assert v.verify(p, spec.oracle(p)).status == "correct", (name, p.reference)
        checked.append(name)
    assert {"countdown", "chain_sum"} <= set(checked)


def test_math_presets_from_local_fixtures():
    ps = load("math500", path=str(FIX / "math500.jsonl"))
    assert len(ps) == 3 and ps[0].split == "eval" and ps[0].source == "math500" and ps[0].reference == "2"
    assert ps[0].metadata["subject"] == "Prealgebra"
    assert load("aime24", path=str(FIX / "aime24.jsonl"))[0].reference == "3"
    n = load("numinamath", path=str(FIX / "numinamath.jsonl"))
    assert n[0].split == "train" and "boxed{5}" in n[0].metadata["solution"]
    o = load("openr1-math", path=str(FIX / "openr1.jsonl"))
    assert o[0].reference == "9" and "generations" not in o[0].metadata


def test_gpqa_shuffle_is_reproducible_and_correct():
    a = load("gpqa-diamond", path=str(FIX / "gpqa.jsonl"))
    b = load("gpqa-diamond", path=str(FIX / "gpqa.jsonl"))
    assert [p.prompt for p in a] == [p.prompt for p in b]
    for p, correct in zip(a, ["Photon", "+7"]):
        letter = p.reference
        assert p.metadata["options"]["ABCD".index(letter)] == correct
        assert f"{letter}) {correct}" in p.prompt and p.domain == "science" and p.split == "eval"


def test_mmlu_pro_subset_and_letters():
    ps = load("mmlu-pro", path=str(FIX / "mmlu_pro.jsonl"))
    assert ps[0].reference == "C" and "N/A" not in ps[0].prompt and "J) 10" in ps[1].prompt
    one = load("mmlu-pro", path=str(FIX / "mmlu_pro.jsonl"), subset="1")
    assert len(one) == 1 and one == load("mmlu-pro", path=str(FIX / "mmlu_pro.jsonl"), subset="1")


def test_livecodebench_tests_decoded_safely():
    ps = load("livecodebench", path=str(FIX / "livecodebench.jsonl"))
    stdin, functional = ps
    assert stdin.reference["tests"][0]["output"] == "3\n" and stdin.reference["n_public"] == 1
    assert stdin.reference["tests"][1:] == [{"input": "5 7\n", "output": "12\n", "testtype": "stdin"}]
    assert functional.reference["fn_name"] == "twice" and "class Solution" in functional.prompt
    from curate.tasks.hf import _tests
    import base64
    import zlib

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = base64.b64encode(zlib.compress(pickle.dumps(Evil()))).decode()
    with pytest.raises(InputError, match="unreadable"):
        _tests(evil)


def test_hexphi_and_load_from_disk(tmp_path):
    ps = load("hex-phi", path=str(FIX / "hexphi.csv"))
    assert len(ps) == 2 and ps[0].domain == "safety" and ps[0].reference is None
    assert ps[0].metadata["category"] == "illegal_activity"
    import datasets

    ds = datasets.load_dataset("json", data_files=str(FIX / "math500.jsonl"), split="train")
    datasets.DatasetDict({"test": ds}).save_to_disk(str(tmp_path / "saved"))
    assert len(load("math500", path=str(tmp_path / "saved"))) == 3
    with pytest.raises(InputError, match="no split"):
        load("math500", path=str(tmp_path / "saved"), hf_split="validation")


def test_hf_generic_mapping_errors_name_the_column():
    ps = load("hf", path=str(FIX / "math500.jsonl"), prompt="problem", reference="solution", domain="math")
    assert ps[0].reference == "It is 2." and ps[0].source == "math500"
    with pytest.raises(InputError, match="no column 'question'"):
        load("hf", path=str(FIX / "math500.jsonl"), prompt="question")
    with pytest.raises(InputError, match="no such file"):
        load("hf", path="./definitely/not-here")
    with pytest.raises(InputError, match="unsupported data file"):
        load("hf", path=__file__)
    with pytest.raises(InputError, match="unknown task or preset"):
        load("math5000")


def test_humaneval_from_package():
    ps = list(iter_problems("humaneval", size=3))
    assert len(ps) == 3 and ps[0].split == "eval" and ps[0].domain == "code"
    assert ps[0].metadata["task_id"] == "HumanEval/0" and "def " in ps[0].prompt and "check" in ps[0].reference["test"]


def test_files_jsonl_and_parquet(tmp_path):
    ps = list(iter_problems(str(FIX / "problems.jsonl")))
    assert [p.prompt for p in ps] == ["What is 2 + 2?", "Name the capital of France.", "3 * 3?"]
    assert ps[0].split == "eval" and ps[0].metadata == {"tag": "easy"} and ps[1].reference == "Paris" and ps[2].reference == 9
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"question": ["a?", "b?"], "answer": ["1", "2"]}), tmp_path / "p.parquet")
    assert len(list(iter_problems(str(tmp_path / "p.parquet")))) == 2
    with pytest.raises(InputError, match=r"bad_json.jsonl:2: malformed JSON"):
        list(iter_problems(str(FIX / "bad_json.jsonl")))
    with pytest.raises(InputError, match=r"bad_split.jsonl:1: field 'split'"):
        list(iter_problems(str(FIX / "bad_split.jsonl")))
    with pytest.raises(InputError, match="no field 'q'"):
        list(iter_problems(str(FIX / "problems.jsonl"), {"prompt": "q"}))


def test_add_to_store_is_idempotent(tmp_path, cli):
    st = TraceStore(tmp_path / "s")
    first = add_problems(st, "math500", {"path": str(FIX / "math500.jsonl")})
    again = add_problems(st, "math500", {"path": str(FIX / "math500.jsonl")})
    assert (first["added"], again["added"]) == (3, 0)
    r = cli("tasks", "add", str(FIX / "problems.jsonl"), "--store", str(tmp_path / "s"), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["added"] == 3
    r = cli("tasks", "add", str(FIX / "bad_json.jsonl"), "--store", str(tmp_path / "s"))
    assert r.returncode == 2 and "bad_json.jsonl:2" in r.stderr and "Traceback" not in r.stderr
    r = cli("tasks", "list", "--json")
    assert r.returncode == 0 and any(t["name"] == "gpqa_diamond" for t in json.loads(r.stdout))
    assert {p.source for p in load("gpqa-diamond", path=str(FIX / "gpqa.jsonl"))} == {"gpqa_diamond"}  # hyphens work too


def test_oracles_pass_the_real_verifiers():
    """Registry-wide: every task with an oracle gets `correct` from the verifier that claims its source."""
    registry = pytest.importorskip("verifiers.registry")
    cases = [("countdown", {"max_numbers": 6}, 8), ("reasoning_gym", {"task": "leg_counting"}, 4), ("humaneval", {}, 2)]
    for name, opts, size in cases:
        spec = TASKS[name]
        for p in iter_problems(name, opts, size=size, seed=4):
            verifier = registry.get_verifier(registry.verifier_for(p))
            answer = spec.oracle(p)
            verdict = verifier.verify(p, answer)
            assert verdict.status == "correct", (name, p.reference, answer, verdict.reason)


def test_reasoning_gym_seeds_are_independent_streams():
    """reasoning-gym seeds entry i with seed + i: our seed is hashed first, so seed 1 is not seed 0 shifted by one."""
    opts = {"task": "word_sorting"}
    zero = [p.prompt for p in iter_problems("reasoning-gym", opts, size=6, seed=0)]
    one = [p.prompt for p in iter_problems("reasoning-gym", opts, size=6, seed=1)]
    assert not set(zero) & set(one)


def test_math500_without_unique_id_names_every_column_it_reads(tmp_path, cli):
    import json as _json

    f = tmp_path / "m.jsonl"
    f.write_text(_json.dumps({"problem": "What is 1+1?", "answer": "2", "subject": "Algebra", "level": 1}) + "\n")
    res = cli("tasks", "add", "math500", "--set", f"path={f}", "--store", str(tmp_path / "st"))
    assert res.returncode == 2
    assert "no column 'unique_id'" in res.stderr and "unique_id" in res.stderr.split("hint:")[1]
    ok = cli("tasks", "add", "math500", "--set", f"path={f}", "--set", "metadata=subject,level", "--store", str(tmp_path / "st"))
    assert ok.returncode == 0, ok.stderr
