"""Reading YAML files people share (recipes, training configs, evaluation suites, study files) safely.

    from curate.yamlfile import load_yaml
    data, root = load_yaml(path, what="recipe")   # root: the composed node tree, for line numbers

Everything PyYAML's SafeLoader accepts, minus what a shared file can use against its reader. Each
refusal is one ConfigError in the form `file:line: field: problem` (field is the dotted path, e.g.
`sources.0.where`):
- anchors and aliases (`&x`, `*x`, so also `<<: *x`): an alias bomb expands a few lines into gigabytes;
- merge keys (`<<: {size: 2}`): they would bring in keys the duplicate-key rule never sees;
- more than MAX_NODES values (a 4 MB list of 2M items would take minutes to read before being refused);
- control characters such as NUL (PyYAML's own rule, reported as one line like any malformed YAML);
- duplicate keys, compared by name (`1` and `"1"` collide): YAML would keep the last one silently;
- numbers longer than MAX_NUMBER_CHARS characters (a 5,000-digit integer otherwise ends in Python's
  int-conversion ValueError), nesting deeper than MAX_DEPTH, files larger than MAX_BYTES, more than one
  document, and Python-specific tags (SafeLoader's own rule);
- numbers that are not finite (`.inf`, `.nan`, `1e999`): no config field means them, and they cannot be
  hashed into a recipe's or config's canonical JSON;
- a path that is not a regular file (a FIFO or a device such as /dev/zero would never end), read at most
  MAX_BYTES + 1 bytes whatever its size claims.
`loads(text, origin, what)` does the same for text, and `parse_scalar(text, origin)` for one value from
the command line (`--set key=value`, `--sweep key=1,2`).
Tested by tests/test_security.py.
"""
from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from curate.errors import ConfigError

MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_NUMBER_CHARS = 64
MAX_NODES = 20_000  # values in one file: shipped files hold a few hundred; PyYAML takes ~50 us a node
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


class _Refused(Exception):
    def __init__(self, mark, field: str, problem: str) -> None:
        super().__init__(problem)
        self.mark, self.field, self.problem = mark, field, problem


def _field(path: list) -> str:
    parts = []
    for p in path:
        if p is None:
            continue
        parts.append(str(p.value) if isinstance(p, yaml.ScalarNode) else "?" if isinstance(p, yaml.Node) else str(p))
    return ".".join(parts)


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses anchors/aliases while composing (before anything is expanded) and keeps the
    path of the node being composed, so a refusal names its field."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list = []
        self._nodes = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        here = self._path + [index]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            name = event.anchor
            raise _Refused(event.start_mark, _field(here),
                           f"YAML anchors and aliases are not allowed (found {'*' if isinstance(event, yaml.AliasEvent) else '&'}{name}); "
                           "write the value out")
        if len(self._path) >= MAX_DEPTH:
            raise _Refused(event.start_mark, _field(here), f"nested more than {MAX_DEPTH} levels deep")
        self._nodes += 1
        if self._nodes > MAX_NODES:  # refused while reading, before the parser works through the rest
            raise _Refused(event.start_mark, _field(here), f"more than {MAX_NODES:,} values in one file")
        self._path.append(index)
        try:
            return super().compose_node(parent, index)
        finally:
            self._path.pop()


def _check_tree(node, path: list, loader: "_Loader") -> None:
    """Duplicate keys and oversized numbers, on the composed tree (no aliases, so its size is the file's)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if key.tag == _MERGE_TAG:  # `<<` merges mappings in: keys would arrive twice, unchecked
                raise _Refused(key.start_mark, _field(path + [key]), "YAML merge keys (<<) are not allowed; write the keys out")
            if isinstance(key, yaml.ScalarNode):
                line = key.start_mark.line + 1
                if key.value in seen:
                    raise _Refused(key.start_mark, _field(path + [key]),
                                   f"duplicate key (first at line {seen[key.value]}); each key may appear once")
                seen[key.value] = line
            _check_tree(key, path, loader)
            _check_tree(value, path + [key], loader)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_tree(item, path + [i], loader)
    elif isinstance(node, yaml.ScalarNode) and node.tag in _NUMBER_TAGS:
        if len(node.value) > MAX_NUMBER_CHARS:
            raise _Refused(node.start_mark, _field(path),
                           f"a number of {len(node.value):,} characters; numbers are limited to {MAX_NUMBER_CHARS}")
        if node.tag == _NUMBER_TAGS[1] and not math.isfinite(loader.construct_yaml_float(node)):
            raise _Refused(node.start_mark, _field(path), f"{node.value} is not a finite number")


def _yaml_error(e: yaml.YAMLError, origin: str, lines: bool = True) -> ConfigError:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    line = f":{mark.line + 1}" if mark is not None and lines else ""
    problem = getattr(e, "problem", None) or (str(e).strip().splitlines() or ["unreadable"])[0]
    ctx, cmark = getattr(e, "context", None), getattr(e, "context_mark", None)
    if ctx and cmark is not None and mark is not None and cmark.line != mark.line:
        problem += f" ({ctx} at line {cmark.line + 1})"
    return ConfigError(f"{origin}{line}: malformed YAML: {problem}")


def loads(text: str, origin: str, what: str = "file", *, lines: bool = True) -> tuple[Any, Any]:
    """(data, root node) of one YAML document in `text`; `origin` names it in errors (a path, followed by
    `:line` unless `lines` is false, as for a one-line command-line value)."""
    try:
        loader = _Loader(text)  # the reader refuses NUL and other control characters here, as a YAMLError
    except yaml.YAMLError as e:
        raise _yaml_error(e, origin, lines) from None
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        _check_tree(root, [], loader)
        return loader.construct_document(root), root
    except _Refused as e:
        field = f" {e.field}:" if e.field else ""
        at = f"{origin}:{e.mark.line + 1}" if lines else origin
        raise ConfigError(f"{at}:{field} {e.problem}",
                          hint=f"a {what} is plain YAML: mappings, lists and scalars") from None
    except yaml.YAMLError as e:
        raise _yaml_error(e, origin, lines) from None
    except (RecursionError, ValueError, OverflowError) as e:  # a value PyYAML could not build
        raise ConfigError(f"{origin}: cannot read this {what}: {type(e).__name__}: {str(e)[:200]}") from None
    finally:
        loader.dispose()


def load_yaml(path: str | Path, what: str = "recipe") -> tuple[Any, Any]:
    """(data, root node) of the YAML file at `path`, or one ConfigError naming file, line and field."""
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer before fstat can refuse it
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ConfigError(f"{path}: not a regular file; a {what} is a YAML file")
            data = f.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise ConfigError(f"{path}: too large for a {what} (limit {MAX_BYTES:,} bytes)")
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read this {what} ({type(e).__name__}: {str(e)[:200]})") from None
    return loads(text, str(path), what)


def parse_scalar(text: str, origin: str) -> Any:
    """One value from the command line, read as YAML with the same rules (`1e-5`, `[3, 5]`, `false`)."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{origin}: value too large")
    return loads(text, origin, "value", lines=False)[0]


def line_of(root: Any, loc: tuple) -> int | None:
    """The 1-based line of the YAML node at `loc` (or of its deepest existing parent)."""
    node, line = root, None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == part:
                    nxt, line = v, k.start_mark.line + 1
                    break
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line


MAX_ERRORS = 5  # items one error line lists; the rest are counted


def format_validation_errors(err, origin: str, root: Any = None) -> str:
    """A pydantic ValidationError as `file:line: field.path: problem` items joined by '; ' (lines from `root`).

    Field paths are keys from the file, so a file that is no config at all (someone's /etc/shadow read as
    YAML) is not echoed back: when none of its top-level keys is a field, the error says so without listing
    them; otherwise at most MAX_ERRORS items are listed, each path cut to 60 characters."""
    errors = err.errors()
    top = [k for k, _ in root.value] if isinstance(root, yaml.MappingNode) else []
    unknown_top = [e for e in errors if e["type"] == "extra_forbidden" and len(e["loc"]) == 1]
    if top and len(unknown_top) == len(top):
        return f"{origin}: none of its {len(top)} top-level keys is a known field; is this the right file?"
    lines = []
    for e in errors[:MAX_ERRORS]:
        loc = tuple(p for p in e["loc"])
        path = ".".join(str(p) for p in loc) or "(recipe)"
        path = path if len(path) <= 60 else path[:57] + "..."
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required field missing"
        # a missing field has no line of its own: point at its section (none for a top-level field)
        at = loc[:-1] if e["type"] == "missing" else loc
        line = line_of(root, at) if root is not None and at else None
        where = f"{origin}:{line}" if line else origin
        lines.append(f"{where}: {path}: {msg}")
    if len(errors) > MAX_ERRORS:
        lines.append(f"and {len(errors) - MAX_ERRORS} more")
    return "; ".join(lines)
