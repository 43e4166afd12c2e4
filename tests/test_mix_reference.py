"""The study's low-quality condition end to end: a trace pool plus NuminaMath short solutions for the same
questions (imported under another source) -> `reference_solution` answers with the human solutions."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from curate.importer import import_dataset
from curate.mix import mix_recipe
from curate.mix.export import PARQUET
from curate.mix.recipe import validate_recipe
from curate.store import TraceStore

FIX = Path(__file__).parent / "fixtures" / "import"


def test_reference_solution_comes_from_the_numina_import_of_the_same_question(tmp_path):
    rows = [json.loads(line) for line in (FIX / "openr1.jsonl").read_text().splitlines()]
    for r in rows:
        del r["solution"]  # the pool carries no solutions: they come from the NuminaMath import
    pool = tmp_path / "pool.jsonl"
    pool.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    st = TraceStore(tmp_path / "store")
    import_dataset(st, str(pool), preset="openr1_math")
    import_dataset(st, str(FIX / "numina.jsonl"), preset="numinamath")
    recipe = validate_recipe({
        "name": "numina-short-test", "seed": 1, "size": 2,
        "sources": [{"name": "pool", "where": "source = 'openr1_math'"}],
        "quality": {"reference_solution": True}, "decontaminate": {"enabled": False},
    }, origin="test")
    mix_recipe(recipe, st, tmp_path / "out")
    out = pq.read_table(tmp_path / "out" / PARQUET).to_pylist()
    numina = {json.loads(l)["problem"]: json.loads(l)["solution"] for l in (FIX / "numina.jsonl").read_text().splitlines()}
    assert len(out) == 2
    for row in out:
        user = next(m["content"] for m in row["messages"] if m["role"] == "user")
        answer = next(m["content"] for m in row["messages"] if m["role"] == "assistant")
        question = next(q for q in numina if user.startswith(q))
        assert answer == numina[question].strip()
        assert row["status"] == "reference"


def test_without_solutions_the_recipe_fails_and_names_the_import(tmp_path):
    """Without NuminaMath solutions numina-short used to answer every question with a bare boxed answer."""
    import pytest

    from curate.errors import ConfigError
    from curate.mix.recipe import load_recipe

    rows = [json.loads(line) for line in (FIX / "openr1.jsonl").read_text().splitlines()]
    for r in rows:
        del r["solution"]
    pool = tmp_path / "pool.jsonl"
    pool.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    st = TraceStore(tmp_path / "store")
    import_dataset(st, str(pool), preset="openr1_math")
    shipped = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "numina-short.yaml").model_dump(mode="json")
    data = {**shipped, "size": 2, "sources": [{"name": "pool", "where": "source = 'openr1_math'"}], "decontaminate": {"enabled": False}}
    with pytest.raises(ConfigError, match="have no reference solution") as e:
        mix_recipe(validate_recipe(data), st, tmp_path / "out")
    assert "--preset numinamath" in e.value.hint and "reference_fallback: boxed_answer" in e.value.hint
    assert not (tmp_path / "out").exists()
    data["quality"] = {**data["quality"], "reference_fallback": "boxed_answer"}
    [manifest] = mix_recipe(validate_recipe(data), st, tmp_path / "out")
    assert manifest["reference"]["boxed_answers"] == 2 and manifest["reference"]["solutions"] == 0
    assert {c["transform"] for c in manifest["composition"]} == {"reference_answer"}
