"""The shipped countdown-cot recipe on a freshly generated Countdown store with an eval split (small sizes):
every row is built, template text is not taken for contamination, and a real leak (the same puzzle) is.

Run: python -m pytest -q tests/test_mix_countdown.py
"""
from __future__ import annotations

from pathlib import Path

import pytest

from curate.mix import build
from curate.mix.recipe import load_recipe, validate_recipe
from curate.records import Problem
from curate.store import TraceStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from curate import tasks
    from curate.generate import runner
    from curate.generate.synthetic import SyntheticBackend, SyntheticConfig
    from curate.label import label_store

    st = TraceStore(tmp_path_factory.mktemp("cd") / "store")
    tasks.add_problems(st, "countdown", size=120, seed=0)
    tasks.add_problems(st, "countdown", {"min_numbers": 4, "max_numbers": 4}, size=20, seed=1, split="eval")
    # a leak: one eval problem is a train puzzle with its numbers listed in another order
    train = st.problems("split = 'train' AND source = 'countdown'")[0]
    nums, target = list(reversed(train.reference["numbers"])), train.reference["target"]
    st.add_problems([Problem(source="countdown", domain="game", prompt=f"Reach {target} with {nums}.",
                             reference={"numbers": nums, "target": target}, split="eval")])
    runner.run(st, SyntheticBackend(config=SyntheticConfig(wrong_share=0.0)), "source = 'countdown' AND split = 'train'",
               runner.RunConfig(n=1, seed=0), progress=False)
    label_store(st, workers=1)
    return st


def countdown_cot(size: int):
    data = load_recipe(ROOT / "recipes" / "countdown-cot.yaml").model_dump(mode="json")
    return validate_recipe({**data, "size": size})


def test_countdown_cot_builds_at_full_size_beside_an_eval_split(store):
    mix = build.build(store, countdown_cot(119))
    assert len(mix.rows) == 119
    assert mix.dropped == {"contaminated": 1}  # only the planted leak, not the shared template
    assert mix.contamination == {"countdown": {"prompt": 1}}
    assert mix.eval_index["keyed"] == 21
    with pytest.raises(Exception, match="118 eligible rows of 120|119 eligible rows of 120"):
        build.build(store, countdown_cot(120))
