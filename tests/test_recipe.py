"""Recipe files: strict validation with file:line and field path, hashing, sweeps, the shipped recipes.

Run: python -m pytest -q tests/test_recipe.py
"""
from __future__ import annotations

from pathlib import Path

import pytest

from curate.errors import ConfigError
from curate.mix.recipe import (STUDY_TEMPLATE, catalog, list_recipes, load_recipe, parse_sweep_option, validate_files,
                               validate_recipe)

ROOT = Path(__file__).resolve().parents[1]
GOOD = """\
# a comment
name: small
seed: 3
size: 10
sources:
  - name: math
    where: "domain = 'math'"
quality:
  incorrect_fraction: 0.5
"""


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_good_recipe_has_study_defaults(tmp_path):
    r = load_recipe(write(tmp_path, GOOD))
    assert r.selection.per_problem == "one_random_correct"
    assert r.output.prompt_template == STUDY_TEMPLATE
    assert STUDY_TEMPLATE.endswith("Please reason step by step, and put your final answer within \\boxed{}.")
    assert r.output.system_prompt is None
    assert r.decontaminate.enabled and r.decontaminate.check == ["prompt", "trace"]


def test_hash_ignores_comments_and_key_order_but_not_meaning(tmp_path):
    a = load_recipe(write(tmp_path, GOOD, "a.yaml"))
    reordered = "size: 10\nseed: 3\n# other comment\nname: small\nquality: {incorrect_fraction: 0.5}\nsources: [{name: math, where: \"domain = 'math'\"}]\n"
    b = load_recipe(write(tmp_path, reordered, "b.yaml"))
    c = load_recipe(write(tmp_path, GOOD.replace("seed: 3", "seed: 4"), "c.yaml"))
    assert a.hash() == b.hash() != c.hash()


@pytest.mark.parametrize("text, expected", [
    (GOOD.replace("  incorrect_fraction: 0.5", "  incorect_fraction: 0.5"), r"r.yaml:9: quality.incorect_fraction: unknown key"),
    (GOOD.replace("  incorrect_fraction: 0.5", "  incorrect_fraction: 1.5"), r"r.yaml:9: quality.incorrect_fraction: Input should be less than or equal to 1"),
    (GOOD.replace("size: 10", "size: lots"), r"r.yaml:4: size: Input should be a valid integer"),
    (GOOD.replace("    where:", "    wher:"), r"r.yaml:7: sources.0.wher: unknown key"),
    (GOOD.replace("name: small\n", ""), r"r.yaml: name: required field missing"),
    (GOOD + "selection:\n  per_problem: best\n", r"r.yaml:11: selection.per_problem: Input should be"),
    (GOOD.replace("domain = 'math'", "domain = 'math'; DROP TABLE x"), r"r.yaml:7: sources.0.where: a predicate is one SQL expression"),
])
def test_errors_name_line_and_field_path(tmp_path, text, expected):
    with pytest.raises(ConfigError) as e:
        load_recipe(write(tmp_path, text))
    assert expected in e.value.message, e.value.message


def test_malformed_yaml_names_the_line(tmp_path):
    bad = GOOD.replace("  - name: math", "  - name: [math")
    with pytest.raises(ConfigError) as e:
        load_recipe(write(tmp_path, bad))
    assert "r.yaml:" in e.value.message and "malformed YAML" in e.value.message
    line = int(e.value.message.split("r.yaml:")[1].split(":")[0])
    assert 6 <= line <= 8


def test_not_a_mapping_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="a recipe is a YAML mapping"):
        load_recipe(write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(ConfigError, match="no such recipe file"):
        load_recipe(tmp_path / "nope.yaml")


@pytest.mark.parametrize("change, message", [
    ({"sources": [{"name": "a", "quota": 20}]}, "quotas add up to 20, more than size 10"),
    ({"sources": [{"name": "a", "quota": 4}]}, "give one source a weight"),
    ({"sources": [{"name": "a", "weight": 1, "quota": 3}]}, "either weight or quota"),
    ({"sources": [{"name": "a"}, {"name": "a"}]}, "repeated: a"),
    ({"selection": {"per_problem": "all_correct"}, "quality": {"incorrect_fraction": 0.5}}, "one-trace-per-problem"),
    ({"quality": {"reference_solution": True, "incorrect_fraction": 0.5}}, "incorrect_fraction must be 0"),
    ({"output": {"prompt_template": "no placeholder"}}, "must contain {question}"),
])
def test_inconsistent_recipes_are_rejected(change, message):
    data = {"name": "x", "size": 10, "sources": [{"name": "a"}], **change}
    with pytest.raises(ConfigError, match=message):
        validate_recipe(data)


def test_sweep_expands_to_named_points_and_validates_each(tmp_path):
    r = load_recipe(write(tmp_path, GOOD), overrides=dict([parse_sweep_option("quality.incorrect_fraction=0,0.25,1")]))
    points = r.expand_sweep()
    assert [s for s, _ in points] == ["incorrect_fraction=0", "incorrect_fraction=0.25", "incorrect_fraction=1"]
    assert [p.quality.incorrect_fraction for _, p in points] == [0, 0.25, 1]
    assert all(p.sweep == {} and p.name.startswith("small-") for _, p in points)
    assert len({p.hash() for _, p in points}) == 3
    with pytest.raises(ConfigError, match="quality.nope: unknown recipe field"):
        load_recipe(write(tmp_path, GOOD), overrides={"quality.nope": [1]})
    with pytest.raises(ConfigError, match="less than or equal to 1"):
        load_recipe(write(tmp_path, GOOD), overrides={"quality.incorrect_fraction": [0.5, 2]}).expand_sweep()
    with pytest.raises(ConfigError, match="expected KEY=V1,V2"):
        parse_sweep_option("quality.incorrect_fraction")


def test_every_shipped_recipe_validates_and_says_what_it_reproduces():
    paths = list_recipes()
    names = {p.stem for p in paths}
    assert {"math-cot", "math-nocot", "numina-short", "countdown-cot", "deepseek-r1-teacher", "incorrect-sweep"} <= names
    for p in paths:
        first = p.read_text().splitlines()[0]
        assert first.startswith("# "), f"{p.name}: the top comment says which condition it reproduces"
        assert "Expects" in p.read_text(), f"{p.name}: the comment says what it expects in the store"
    results = validate_files([str(p) for p in paths])
    assert all(r["ok"] for r in results), [r["error"] for r in results if not r["ok"]]
    assert all(row["error"] is None for row in catalog())
    sweep = load_recipe(ROOT / "recipes" / "incorrect-sweep.yaml")
    assert [p.quality.incorrect_fraction for _, p in sweep.expand_sweep()] == [0, 0.25, 0.5, 0.75, 1]
    cot, nocot = load_recipe(ROOT / "recipes" / "math-cot.yaml"), load_recipe(ROOT / "recipes" / "math-nocot.yaml")
    assert cot.sources == nocot.sources and cot.filters == nocot.filters and cot.seed == nocot.seed
    assert nocot.quality.strip_thinking and cot.size == 20480
