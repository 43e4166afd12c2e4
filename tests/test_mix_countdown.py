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


# ---------------------------------------------------------------- hints that name the cause, and work when followed


def _hint(r) -> str:
    return next(ln for ln in r.stderr.splitlines() if ln.startswith("hint:"))


def _backticked_command(hint: str) -> list[str]:
    """The first `curate ...` command quoted in a hint, as argv after `curate`."""
    import shlex

    cmd = next(part for part in hint.split("`")[1::2] if part.startswith("curate generate"))
    return shlex.split(cmd)[1:]


@pytest.fixture
def right_only(tmp_path):
    """A Countdown store whose synthetic traces are all correct (the synthetic backend's default wrong_share)."""
    from curate import tasks
    from curate.generate import runner
    from curate.generate.synthetic import SyntheticBackend, SyntheticConfig
    from curate.label import label_store

    st = TraceStore(tmp_path / "store")
    tasks.add_problems(st, "countdown", size=24, seed=0)
    runner.run(st, SyntheticBackend(config=SyntheticConfig(wrong_share=0.0)), "source = 'countdown'",
               runner.RunConfig(n=2, seed=0), progress=False)
    label_store(st, workers=1)
    return tmp_path / "store"


def test_a_predicate_that_matches_nothing_is_named_and_the_hinted_where_builds(right_only, tmp_path, cli):
    from tests.helpers import one_error_line

    r = cli("mix", "math-cot", "--store", str(right_only), "--out", str(tmp_path / "m"), "--set", "size=16")
    one_error_line(r, "source qwen3-32b: the predicate matched no traces: domain = 'math' AND model ILIKE '%qwen3-32b%'")
    hint = _hint(r)
    assert "relax" not in hint and "source 'countdown' model 'countdown-dfs' (48)" in hint
    assert "--set sources.0.where=" in hint
    r = cli("mix", "math-cot", "--store", str(right_only), "--out", str(tmp_path / "m"), "--set", "size=16",
            "--set", "sources.0.where=source = 'countdown'")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("knob", ["selection.require_incorrect=true", "quality.incorrect_fraction=0.5"])
def test_no_incorrect_traces_is_named_and_the_hinted_generate_fixes_it(right_only, tmp_path, cli, knob):
    from tests.helpers import one_error_line

    mix = ["mix", "countdown-cot", "--store", str(right_only), "--set", "size=12", "--set", knob]
    sweep = ["--sweep", "quality.incorrect_fraction=0,0.5"]
    for extra in ([], sweep):
        r = cli(*mix, *extra, "--out", str(tmp_path / "m"))
        one_error_line(r, "no incorrect traces exist for source countdown")
        hint = _hint(r)
        assert "require_incorrect" not in hint and "relax" not in hint and "--option wrong_share=0.5" in hint
    g = cli(*_backticked_command(hint), "--store", str(right_only), "--no-progress")
    assert g.returncode == 0, g.stderr
    assert cli("verify", "--store", str(right_only), "--workers", "1").returncode == 0
    r = cli(*mix, *sweep, "--out", str(tmp_path / "m"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m" / "incorrect_fraction=0.5" / "manifest.json").is_file()
