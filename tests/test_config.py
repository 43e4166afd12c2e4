"""One config plumbing for recipes, training configs, suites and studies: `--set` values read as YAML scalars,
dotted setting, one error format, and shipped names resolved in one place."""
from __future__ import annotations

import pytest

from curate.config import parse_set, parse_sets, resolve_shipped, set_dotted, shipped_dir, shipped_names
from curate.errors import ConfigError


@pytest.mark.parametrize("spec, want", [
    ("x=none", "none"), ("x=null", None), ("x=~", None), ("x=", ""), ("x=1.0e-5", 1e-5), ("x=1e-5", "1e-5"), ("x=3", 3),
    ("x=false", False), ("x=[3, 5]", [3, 5]), ("x=a b", "a b"), ("x=k=v", "k=v"), (" x =7", 7),
])
def test_set_values_follow_yaml_scalar_rules(spec, want):
    assert parse_set(spec)[1] == want


def test_set_needs_key_and_equals_and_later_wins():
    for bad in ("noequals", "=3", " =3"):
        with pytest.raises(ConfigError, match="expected KEY=VALUE"):
            parse_set(bad)
    assert parse_sets(["a=1", "b=2", "a=3"]) == {"a": 3, "b": 2}


def test_set_dotted_existing_fields_and_created_sections():
    data = {"quality": {"incorrect_fraction": 0.0}, "sources": [{"where": "x"}]}
    set_dotted(data, "quality.incorrect_fraction", 0.5, what="recipe")
    set_dotted(data, "sources.0.where", "y", what="recipe")
    assert data == {"quality": {"incorrect_fraction": 0.5}, "sources": [{"where": "y"}]}
    with pytest.raises(ConfigError, match="quality.nope: unknown recipe field"):
        set_dotted(data, "quality.nope", 1, what="recipe")
    with pytest.raises(ConfigError, match="no item 3"):
        set_dotted(data, "sources.3", 1, what="recipe")
    with pytest.raises(ConfigError, match="'quality.incorrect_fraction' is not a section"):
        set_dotted(data, "quality.incorrect_fraction.x", 1, what="recipe")
    fresh: dict = {}
    set_dotted(fresh, "train.lr", 1e-5, create=True)
    assert fresh == {"train": {"lr": 1e-5}}


@pytest.mark.parametrize("kind, name", [("recipes", "math-cot"), ("studies", "demo"), ("suites", "countdown"),
                                        ("configs", "debug")])
def test_shipped_names_resolve_for_every_kind(kind, name):
    assert name in shipped_names(kind)
    assert resolve_shipped(kind, name) == shipped_dir(kind) / f"{name}.yaml"


def test_unknown_names_and_missing_paths_are_one_error_listing_the_shipped(tmp_path):
    with pytest.raises(ConfigError) as e:
        resolve_shipped("recipes", "math-cott")
    assert "no recipe named 'math-cott'" in e.value.message and "math-cot" in e.value.hint
    with pytest.raises(ConfigError, match="no such study file"):
        resolve_shipped("studies", str(tmp_path / "nope.yaml"))
    own = tmp_path / "mine.yaml"
    own.write_text("name: x\n")
    assert resolve_shipped("recipes", str(own)) == own


def test_tasks_add_set_uses_the_same_rules(tmp_path, cli):
    """`--set` on `tasks add` is read like every other `--set`: numbers are numbers, a bad value is one line."""
    import json

    st = str(tmp_path / "st")
    r = cli("tasks", "add", "countdown", "--size", "3", "--store", st, "--set", "min_numbers=3", "--set", "max_numbers=3",
            "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["added"] == 3
    bad = cli("tasks", "add", "countdown", "--size", "3", "--store", st, "--set", "min_numbers=lots")
    assert bad.returncode == 2 and bad.stderr.count("\n") <= 2 and "min_numbers" in bad.stderr, bad.stderr
