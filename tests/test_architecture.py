"""The import rules of docs/DESIGN: `verifiers/` imports nothing from `curate/`, nothing in the library imports
the command line, and no package reaches into another package's private names."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []


def _package(rel: Path) -> str:
    """`curate.store` for curate/store/x.py, `curate` for curate/x.py, `verifiers` for verifiers/x.py."""
    return ".".join(rel.parts[:2]) if rel.parts[0] == "curate" and len(rel.parts) > 2 else rel.parts[0]


def _files(*tops: str) -> list[Path]:
    return sorted(p for t in tops for p in (ROOT / t).rglob("*.py"))


def test_verifiers_is_a_leaf_package():
    bad = [f"{p.relative_to(ROOT)}: {m}" for p in _files("verifiers") for m, _ in _imports(p)
           if m == "curate" or m.startswith("curate.")]
    assert not bad, bad


def test_nothing_in_the_library_imports_the_command_line():
    allowed = {ROOT / "curate" / "__main__.py"}
    bad = [f"{p.relative_to(ROOT)}: {m}" for p in _files("curate", "verifiers") if p not in allowed
           and "cli" not in p.relative_to(ROOT).parts[:2] for m, _ in _imports(p)
           if m == "cli" or m == "curate.cli" or m.startswith("curate.cli.")]
    assert not bad, bad


def test_no_private_names_across_packages():
    bad = []
    for p in _files("curate", "verifiers"):
        here = _package(p.relative_to(ROOT))
        for module, names in _imports(p):
            if not module.startswith(("curate", "verifiers")):
                continue
            there = ".".join(module.split(".")[:2]) if module.startswith("curate.") else module.split(".")[0]
            bad += [f"{p.relative_to(ROOT)}: {module}.{n}" for n in names
                    if n.startswith("_") and not n.startswith("__") and there != here]
    assert not bad, bad


def test_children_start_curate_not_the_checkout_script():
    """Library code starts its own command line as `python -m curate` (works from a wheel), never `-m cli`."""
    bad = [str(p.relative_to(ROOT)) for p in _files("curate") if '"-m", "cli"' in p.read_text(encoding="utf-8")]
    assert not bad, bad
