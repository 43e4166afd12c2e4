"""The store under concurrent use and random SIGKILLs (the scenario of benchmarks/soak_store.py, bounded).

Two `curate generate` loops on disjoint predicates, a `curate verify --batch-size 50` loop and a
`curate sql`/`stats` loop run at once while participants are SIGKILLed at random. The store must pass
`curate doctor`'s check, and once the started commands are finished it must equal a clean serial run.
The long version: `python benchmarks/soak_store.py --runs 200`.
"""
from __future__ import annotations

import random

import pytest

from benchmarks.soak_store import make_template, run_once


def soak_runs(tmp_path, runs: int, seconds: float, problems: int) -> None:
    template = make_template(tmp_path / "template", problems)
    rng = random.Random(1)
    refs: dict = {}
    kills = 0
    for _ in range(runs):
        res = run_once(template, tmp_path, seconds, True, rng, refs)
        assert not res.problems, res.problems
        assert not res.failures, res.failures
        kills += res.kills
    assert kills >= runs  # participants really were killed mid-work


def test_concurrent_use_with_kills_keeps_the_store_whole(tmp_path):
    soak_runs(tmp_path, runs=1, seconds=6, problems=120)


@pytest.mark.slow
def test_concurrent_use_with_kills_soak(tmp_path):
    soak_runs(tmp_path, runs=6, seconds=12, problems=300)
