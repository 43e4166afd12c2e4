"""One way to configure curate: the strict pydantic base of every config file (recipes, training configs,
eval suites, study files), the `--set KEY=VALUE` parser, dotted setting into a config's data, the validation
error formatter, and the resolver of shipped names (`math-cot`, `study`, `countdown`, `demo`).

`--set` values are read as YAML scalars with the file loader's rules (`1.0e-5` and `0.00001` floats, `1e-5` a
string that a float field still accepts, `[3, 5]` a list, `null` None, `none` the string "none"); an empty value
is the empty string.

Shipped files are package data: `recipes/` and `studies/` at the repository root travel in the wheel as
`curate._shipped.recipes` and `curate._shipped.studies` (see setup.py), suites and training configs live
inside their packages. From a checkout they are read where they are.
Test: tests/test_config.py.
"""
from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict

from curate.errors import ConfigError
from curate.yamlfile import format_validation_errors, parse_scalar

__all__ = ["StrictModel", "parse_set", "parse_sets", "set_dotted", "format_errors", "SHIPPED", "shipped_dir",
           "shipped_names", "resolve_shipped"]


class StrictModel(BaseModel):
    """Unknown keys are errors (a typo never silently falls back to a default) and values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_set(spec: str, flag: str = "--set") -> tuple[str, Any]:
    """`train.lr=1e-5` -> ("train.lr", 1e-05): the value read as a YAML scalar (empty: "")."""
    key, sep, value = spec.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{flag} {spec!r}: expected KEY=VALUE, e.g. size=512 or train.lr=1e-5")
    return key, parse_scalar(value, f"{flag} {key}") if value.strip() else ""


def parse_sets(specs: Iterable[str] | None, flag: str = "--set") -> dict[str, Any]:
    """Several `KEY=VALUE` options; a later one for the same key wins."""
    return dict(parse_set(s, flag) for s in specs or [])


def set_dotted(data: dict, key: str, value: Any, where: str = "--set", what: str = "config", create: bool = False) -> None:
    """Set `a.b.c` in a config's data (list items by index: `sources.0.where`).

    With create=False the field must already exist (a recipe dumped with every default); with create=True
    missing sections are made (a training config file names only what differs from the defaults)."""
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            child = node[int(part)] if part.isdigit() and int(part) < len(node) else None
        else:
            child = node.get(part)
            if child is None and create:
                child = node[part] = {}
        if not isinstance(child, (dict, list)):
            raise ConfigError(f"{where}: {key}: '{'.'.join(parts[: i + 1])}' is not a section of a {what}")
        node = child
    last = parts[-1]
    if isinstance(node, list):
        if not (last.isdigit() and int(last) < len(node)):
            raise ConfigError(f"{where}: {key}: no item {last} in '{'.'.join(parts[:-1])}'")
        node[int(last)] = value
        return
    if last not in node and not create:
        raise ConfigError(f"{where}: {key}: unknown {what} field")
    node[last] = value


def format_errors(err, origin: str, root: Any = None, what: str = "config") -> str:
    """A pydantic ValidationError as `file:line: field.path: problem` items joined by '; '."""
    return format_validation_errors(err, origin, root).replace("(recipe)", f"({what})").replace("Value error, ", "")


# kind -> (package, its sub-folder holding the files when installed; the checkout's root folder or None)
SHIPPED = {
    "recipes": ("curate", "_shipped/recipes", "recipes"),
    "studies": ("curate", "_shipped/studies", "studies"),
    "suites": ("curate.evaluate", "suites", None),
    "configs": ("curate.train", "configs", None),
}


_SINGULAR = {"recipes": "recipe", "studies": "study", "suites": "suite", "configs": "config"}


def shipped_dir(kind: str) -> Path:
    """The folder of shipped `kind` files: the checkout's own folder, else the installed package data."""
    package, sub, folder = SHIPPED[kind]
    if folder is not None:
        checkout = Path(__file__).resolve().parents[1]
        if (checkout / "pyproject.toml").is_file() and (checkout / folder).is_dir():
            return checkout / folder
    return Path(str(importlib.resources.files(package).joinpath(sub)))


def shipped_names(kind: str) -> list[str]:
    d = shipped_dir(kind)
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def resolve_shipped(kind: str, name_or_path: str | Path, what: str | None = None) -> Path:
    """A path as given when it exists or looks like a path (has a separator or a .yaml suffix); otherwise the
    shipped file of that name. Neither: one ConfigError listing the shipped names."""
    raw = str(name_or_path)
    p = Path(raw).expanduser()
    what = what or _SINGULAR[kind]
    if p.is_file():
        return p
    if p.suffix in (".yaml", ".yml") or "/" in raw or p.exists():
        raise ConfigError(f"{p}: no such {what} file", hint=f"shipped {kind}: {', '.join(shipped_names(kind)) or 'none'}")
    shipped = shipped_dir(kind) / f"{raw}.yaml"
    if shipped.is_file():
        return shipped
    raise ConfigError(f"no {what} named {raw!r} (and no such file)",
                      hint=f"shipped {kind}: {', '.join(shipped_names(kind)) or 'none'}; or give a YAML path")
