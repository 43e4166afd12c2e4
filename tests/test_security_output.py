"""Terminal control sequences in data never reach the terminal: tables, errors, warnings and --json.

Trace text, problem prompts, file names and error messages may hold ESC or C1 sequences (recolour, retitle,
clear the screen, write the clipboard with OSC 52) or bidirectional overrides. Through `python -m curate`,
with and without a colour terminal forced, they must print as visible escapes, and --json must carry the
same values escaped. Run: python -m pytest -q tests/test_security_output.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from curate.cli.common import printable
from curate.records import Problem
from curate.store import TraceStore
from tests.helpers import ROOT

OSC = "\x1b]52;c;cm0gLXJmIH4=\x07"  # write the clipboard
CSI = "\x1b[2J\x9b31m"  # clear the screen; C1 CSI
BIDI = "\u202eevil"
OSC8 = "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\"  # a hyperlink the text does not show
CR = "\rsafe"  # back to the start of the line: what follows overprints what came before
HOSTILE = f"q {OSC} {CSI} {BIDI} {OSC8} {CR}"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    st = TraceStore(tmp_path_factory.mktemp("out") / "store")
    st.add_problems([Problem(source="unit", domain="math", prompt=HOSTILE, reference="1")])
    return st


def curate(store, *args, colour=False):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CURATE_STORE": str(store.path), "COLUMNS": "200"}
    env.pop("NO_COLOR", None)
    if colour:
        env["FORCE_COLOR"] = "1"
        env["TERM"] = "xterm-256color"
    return subprocess.run([sys.executable, "-m", "curate", *args], capture_output=True, text=True, timeout=120, env=env)


def no_raw_controls(text: str, colour: bool) -> None:
    for bad in ("\x1b]", "\x07", "\x9b", "\u202e", "\x1b[2J", CR):
        assert bad not in text, repr(text)
    if not colour:
        assert "\x1b" not in text, repr(text)


@pytest.mark.parametrize("colour", [False, True])
def test_table_prints_data_controls_as_escapes(store, colour):
    r = curate(store, "sql", "SELECT prompt FROM problems", colour=colour)
    assert r.returncode == 0, r.stderr
    no_raw_controls(r.stdout + r.stderr, colour)
    assert "\\x1b]52;c;cm0gLXJmIH4=\\x07" in r.stdout and "\\x9b31m" in r.stdout and "\\u202eevil" in r.stdout
    assert "\\x1b]8;;https://evil.example" in r.stdout and "\\x0dsafe" in r.stdout
    if colour:
        assert "\x1b[" in r.stdout  # rich's own styling still reaches a colour terminal


@pytest.mark.parametrize("colour", [False, True])
def test_error_lines_print_controls_as_escapes(store, colour):
    r = curate(store, "sql", f'SELECT * FROM "{OSC}{CSI}{OSC8}{CR}"', colour=colour)
    assert r.returncode != 0
    no_raw_controls(r.stdout + r.stderr, colour)
    assert "\\x1b]52" in r.stderr


def test_json_keeps_the_values_and_escapes_them(store):
    r = curate(store, "sql", "SELECT prompt FROM problems", "--json")
    assert r.returncode == 0, r.stderr
    no_raw_controls(r.stdout, False)
    assert json.loads(r.stdout) == [{"prompt": HOSTILE}]


def test_printable_table():
    assert printable("a\x1b[31mb\tc\nd\x7f\x85\u2066") == "a\\x1b[31mb\tc\nd\\x7f\\x85\\u2066"
    assert printable("plain ünïcode ✓ <think>") == "plain ünïcode ✓ <think>"


def test_csv_prints_controls_as_escapes(store):
    r = curate(store, "sql", "SELECT prompt, 'a\nb' AS two_lines FROM problems", "--csv")
    assert r.returncode == 0, r.stderr
    no_raw_controls(r.stdout, False)
    assert "\\x1b]52;c;cm0gLXJmIH4=\\x07" in r.stdout and '"a\nb"' in r.stdout and "\\x0dsafe" in r.stdout


# ---------------------------------------------------------------- report.md and report.html
IMG = "<img src=x onerror=alert(1)>"
LINK = "x](javascript:alert(1))"


def test_report_prints_names_from_data_as_text(tmp_path):
    """Run and benchmark names from an imported file reach report.md and report.html as the text they are: rendered
    by a real Markdown parser, no tag, link or image comes from them."""
    from markdown_it import MarkdownIt

    from curate.evaluate.report import build_report
    from curate.store.evals import write_evals

    st = TraceStore(tmp_path / "st`x`<u>")
    curves = {IMG: {0: 50.0, 10: 60.0, 80: 40.0}, LINK: {0: 50.0, 10: 40.0, 80: 60.0}}
    write_evals(st, [dict(run=run, step=s, suite="x", benchmark=f"b{IMG}|`", metric="avg@1", value=v, settings_hash="h",
                          provenance="curate", ci_low=v - 1.0, ci_high=v + 1.0)
                     for run, c in curves.items() for s, v in c.items()])
    data = build_report(st, tmp_path / "out")
    assert data["benchmarks"][0]["flips"]  # the names reach the flip lines, the table and the viewer links too
    md = (tmp_path / "out" / "report.md").read_text()
    page = MarkdownIt("commonmark").enable("table").render(md)
    html_page = (tmp_path / "out" / "report.html").read_text()
    for out in (page, html_page):
        assert "<img src=x" not in out and "<u>" not in out and 'href="javascript' not in out, out
    assert page.count("<img") == 1 and page.count("<a href") == 2  # the score figure and two viewer links: ours only
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "x](javascript:alert(1))" in page
    assert f"<code>{tmp_path}/st`x`&lt;u&gt;</code>" in page  # the store path stays one code span


@pytest.mark.parametrize("name", [
    "[1.0, 2.0](javascript:alert(1))",  # a CI's shape followed by a link target
    "[1.0, 2.0][x]",  # ... by a reference
    "[1.0, 2.0]: javascript:alert(1)",  # ... as a link definition
    "[x](javascript:alert(1))",
    "a [b, c] d",
])
def test_report_markdown_keeps_only_a_ci_s_brackets_plain(name):
    """report.md leaves a confidence interval's brackets unescaped (`[12.5, 30.0]`, so the raw file reads as it
    renders), and still escapes every bracket of a name from data: no link comes from a name that looks like a CI."""
    from markdown_it import MarkdownIt

    from curate.evaluate.report_pages import _md

    line = _md(f"{name} beats b by 3.0 points [+1.5, -4.0] (paired bootstrap) at step 10 {name}")
    assert " [+1.5, -4.0] (paired" in line
    for md in (line, f"- {line}", f"| {line} |\n|---|\n| {line} |"):
        page = MarkdownIt("commonmark").enable("table").render(md + "\n\n[x]: javascript:alert(2)\n")
        assert "<a" not in page and "[+1.5, -4.0] (paired bootstrap)" in page, page
        assert page.count(name) == 2 * md.count(line), page
