"""Countdown task: reproducible generation, targets with a solution, and a solver checked against brute force."""
from __future__ import annotations

import itertools
import random

import pytest

from curate.errors import InputError
from curate.tasks import iter_problems, list_tasks
from curate.tasks.base import build_config
from curate.tasks.countdown import (
    CountdownConfig, apply_op, canonical, check_answer, generate, has_solution, oracle, solve,
)


def brute_force(nums: list[int]) -> dict[int, set]:
    """Every value reachable with all of nums under the rules -> canonical expression keys (slow, obvious)."""
    if len(nums) == 1:
        return {nums[0]: {nums[0]}}
    out: dict[int, set] = {}
    idx = range(len(nums))
    for r in range(1, len(nums)):
        for left in itertools.combinations(idx, r):
            if left[0] != 0:
                continue
            right = [i for i in idx if i not in left]
            la, lb = brute_force([nums[i] for i in left]), brute_force([nums[i] for i in right])
            for a, ea in la.items():
                for b, eb in lb.items():
                    for op in "+-*/":
                        for (p, ep), (q, eq) in (((a, ea), (b, eb)), ((b, eb), (a, ea))):
                            v = apply_op(op, p, q)
                            if v is not None:
                                out.setdefault(v, set()).update((op, x, y) for x in ep for y in eq)
    return out


def test_solver_matches_brute_force():
    rng = random.Random(7)
    found = missing = 0
    for _ in range(25):
        nums = [rng.randint(1, 15) for _ in range(rng.randint(3, 5))]
        target = rng.randint(5, 80)
        table = brute_force(nums)
        expected = {canonical(e) for e in table.get(target, ())}
        sols = solve(nums, target)
        assert has_solution(nums, target) == bool(expected), (nums, target)
        assert len(sols) == len(expected), (nums, target)
        for s in sols:
            assert check_answer(s, nums, target) == (True, "ok"), s
        found += bool(expected)
        missing += not expected
    assert found and missing  # the table exercises both outcomes


def test_proves_no_solution():
    assert solve([1, 1, 1], 100) == []
    assert not has_solution([2, 3], 7)
    assert solve([2, 3], 6) == ["2 * 3"] or solve([2, 3], 6) == ["3 * 2"]


def test_six_numbers_solver_is_fast():
    import time

    t = time.perf_counter()
    assert has_solution([25, 50, 75, 100, 3, 6], 952)
    assert time.perf_counter() - t < 2.0


def test_generation_is_reproducible_and_solvable():
    cfg = CountdownConfig()
    a = [generate(cfg, 42, i) for i in range(40)]
    b = [generate(cfg, 42, i) for i in range(40)]
    assert [p.id for p in a] == [p.id for p in b]
    assert [p.metadata for p in a] == [p.metadata for p in b]
    sizes = set()
    for p in a:
        nums, target = p.reference["numbers"], p.reference["target"]
        assert set(p.reference) == {"numbers", "target"}
        assert 3 <= len(nums) <= 6 and all(1 <= n <= 100 for n in nums)
        assert cfg.min_target <= target <= cfg.max_target
        assert check_answer(p.metadata["solution"], nums, target)[0]
        assert p.metadata["n_solutions"] >= 1 and p.metadata["difficulty"] in ("easy", "medium", "hard")
        assert f"Numbers: {nums}" in p.prompt and f"Target: {target}" in p.prompt and "\\boxed{" in p.prompt
        assert p.domain == "game" and p.split == "train"
        assert oracle(p) == f"\\boxed{{{p.metadata['solution']}}}"
        sizes.add(len(nums))
    assert sizes == {3, 4, 5, 6}
    assert generate(cfg, 43, 0).id != a[0].id


def test_configurable_ranges():
    cfg = build_config(CountdownConfig, {"min_numbers": "4", "max_numbers": "4", "max_value": "10", "operators": "+-"})
    for p in iter_problems("countdown", {"min_numbers": 4, "max_numbers": 4, "max_value": 10, "operators": "+-",
                                         "min_target": 1, "max_target": 40}, size=10, seed=1, split="eval"):
        assert len(p.reference["numbers"]) == 4 and max(p.reference["numbers"]) <= 10
        assert "*" not in p.metadata["solution"] and "/" not in p.metadata["solution"]
        assert p.split == "eval"
    assert cfg.max_value == 10


@pytest.mark.parametrize("opts, needle", [
    ({"min_numbers": 5, "max_numbers": 3}, "min_numbers"),
    ({"operators": "+^"}, "operators"),
    ({"max_value": "lots"}, "max_value"),
    ({"colour": "red"}, "unknown option"),
])
def test_bad_config_is_named(opts, needle):
    with pytest.raises(InputError, match=needle):
        list(iter_problems("countdown", opts, size=1))


def test_generated_task_needs_size_and_unknown_task_named():
    with pytest.raises(InputError, match="--size"):
        list(iter_problems("countdown"))
    with pytest.raises(InputError, match="unknown task"):
        list(iter_problems("no-such-task", size=1))


@pytest.mark.parametrize("answer, ok", [
    ("(25 - 3) * 4 + 7", False),
    ("2 * 3 + 4", True),
    ("4 + 3 * 2", True),
    ("2 \\times 3 + 4", True),
    ("2 * 3 + 4 = 10", True),
    ("2 * 3", False),  # a number left out
    ("2 * 3 + 4 + 4", False),  # a number used twice
    ("__import__('os')", False),
    ("10", False),
])
def test_check_answer_table(answer, ok):
    assert check_answer(answer, [2, 3, 4], 10)[0] is ok


def test_listed():
    names = {t["name"] for t in list_tasks()}
    assert "countdown" in names


def test_seeds_give_independent_streams():
    """With Random(seed + index), seed 1 repeated seed 0 shifted by one problem: an eval set leaked into train."""
    cfg = CountdownConfig()
    train = {generate(cfg, 0, i).id for i in range(300)}
    assert not train & {generate(cfg, 1, i).id for i in range(300)}
    assert not train & {generate(cfg, 2, i).id for i in range(300)}


def test_problem_stored_under_the_other_split_is_a_reported_conflict(tmp_path):
    from curate.store import TraceStore
    from curate.tasks import add_problems

    st = TraceStore(tmp_path / "st")
    first = add_problems(st, "countdown", size=30, seed=0)
    assert first["added"] == 30 and first["conflicts"] == 0
    other = add_problems(st, "countdown", {"min_numbers": 4, "max_numbers": 4}, size=20, seed=1, split="eval")
    assert other["added"] == 20 and other["conflicts"] == 0
    # the same problems again, now asked for as eval: none is silently kept as train under an eval label
    clash = add_problems(st, "countdown", size=10, seed=0, split="eval")
    assert clash["added"] == 0 and clash["conflicts"] == 10 and clash["split"] == "eval"
    assert {c["stored_split"] for c in clash["conflicting"]} == {"train"}
    counts = st.query("SELECT split, count(*) AS n FROM problems GROUP BY split ORDER BY split").to_pylist()
    assert counts == [{"split": "eval", "n": 20}, {"split": "train", "n": 30}]
    # re-adding under the same split is the ordinary idempotent no-op, not a conflict
    again = add_problems(st, "countdown", size=30, seed=0)
    assert again["added"] == 0 and again["conflicts"] == 0


def test_cli_tasks_add_warns_about_split_conflicts(tmp_path, cli):
    st = str(tmp_path / "st")
    assert cli("tasks", "add", "countdown", "--size", "5", "--store", st).returncode == 0
    res = cli("tasks", "add", "countdown", "--size", "5", "--split", "eval", "--store", st)
    assert res.returncode == 0, res.stderr
    assert "0 new" in res.stdout and "5 problems are already stored under another split" in res.stderr


def test_every_task_names_a_registered_verifier():
    from verifiers.registry import describe_all

    names = {v["name"] for v in describe_all()}
    for t in list_tasks():
        assert t["verifier"] is None or t["verifier"] in names, (t["name"], t["verifier"])


def test_size_counts_distinct_puzzles():
    """Tiny ranges repeat puzzles: --size N still gives N different ones (by numbers and target)."""
    from curate.tasks.countdown import key

    opts = {"min_numbers": 2, "max_numbers": 2, "max_value": 6, "min_target": 1, "max_target": 40}
    ps = list(iter_problems("countdown", opts, size=25, seed=0))
    assert len(ps) == 25 and len({key(p.reference) for p in ps}) == 25
    assert ps[-1].metadata["index"] > 24  # some draws were repeats and were skipped
    with pytest.raises(InputError, match="distinct problems in"):
        list(iter_problems("countdown", opts, size=500, seed=0))


def test_the_same_puzzle_with_its_numbers_reordered_is_a_split_conflict(tmp_path):
    import json

    from curate.store import TraceStore
    from curate.tasks import add_problems

    st = TraceStore(tmp_path / "st")
    add_problems(st, "countdown", size=5, seed=0)
    stored = st.problems("split = 'train'")[0]
    nums = list(reversed(stored.reference["numbers"]))
    twin = {"source": "countdown", "domain": "game", "split": "eval", "reference": {"numbers": nums, "target": stored.reference["target"]},
            "prompt": stored.prompt.replace(str(stored.reference["numbers"]), str(nums))}
    (tmp_path / "twin.jsonl").write_text(json.dumps(twin) + "\n")
    res = add_problems(st, str(tmp_path / "twin.jsonl"), split="eval")
    assert res["conflicts"] == 1 and res["added"] == 0 and res["conflicting"][0]["id"] == stored.id


def test_add_problems_reports_progress(tmp_path):
    from curate.store import TraceStore
    from curate.tasks import add_problems

    seen: list[tuple] = []
    add_problems(TraceStore(tmp_path / "st"), "countdown", size=120, seed=0, progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (50, 120) and seen[-1] == (120, 120)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
