"""`curate view --export DIR`: a static, self-contained copy of chosen views that opens offline from disk.

What goes in (flat, so every link is a plain relative file name):
    index.html               the overview
    traces-N.html            the list of the chosen traces (`--where` over `traces`, newest first, `--limit` of them)
    trace-ID.html            each chosen trace, previous/next in that order (keys j/k as on the server)
    problem-ID.html          the problems of the chosen traces, their traces side by side
    evals.html, grid-H.html  every evaluation's explorer, one per training run (first page of problems, and its
                             two filters), and the eval traces that page shows (up to `--limit` more)
    mixtures.html, mixture-H.html  each known mixture's first page of rows, composition and card
    static/                  htmx, view.js, view.css (the same files the server sends)
A link to a page that was not exported is plain text. The filter form needs a server and is left out.
Tested by tests/test_view.py (files, links, escaping) and tests/test_view_browser.py (opened from disk).
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Mapping

from curate.errors import InputError
from curate.store import view_queries as vq
from curate.view import mixtures as mx
from curate.view import pages
from curate.view.app import HERE, environment


def _h(*parts) -> str:
    return hashlib.sha1("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:12]


class ExportLinks(pages.Links):
    """File names of the exported pages; None for pages the copy does not hold."""

    static_mode = True

    def __init__(self, base: dict, list_pages: int) -> None:
        self.base, self.list_pages = base, list_pages
        self.trace_ids: set[str] = set()
        self.problem_ids: set[str] = set()
        self.grids: set[tuple] = set()
        self.mixture_names: set[str] = set()

    def static(self, name: str) -> str:
        return f"static/{name}"

    def overview(self) -> str:
        return "index.html"

    def traces(self, params: Mapping | None = None) -> str | None:
        p = {k: v for k, v in (params or {}).items() if k not in ("pos",) and v not in (None, "")}
        page = int(p.pop("page", 1) or 1)
        if p and p != self.base:
            return None
        return f"traces-{page}.html" if 1 <= page <= self.list_pages else None

    def trace(self, sample_id: str, ctx: Mapping | None = None) -> str | None:
        return f"trace-{sample_id}.html" if sample_id in self.trace_ids else None

    def problem(self, problem_id: str) -> str | None:
        return f"problem-{problem_id}.html" if problem_id in self.problem_ids else None

    def evals(self) -> str:
        return "evals.html"

    def grid(self, run, benchmark, suite=None, only="", page=1, run_id="") -> str | None:
        key = (run, benchmark, suite or "", only, run_id)
        return f"grid-{_h(*key)}.html" if page == 1 and key in self.grids else None

    def mixtures(self) -> str:
        return "mixtures.html"

    def mixture(self, name: str, page: int = 1) -> str | None:
        return f"mixture-{_h(name)}.html" if page == 1 and name in self.mixture_names else None


def export(store, out: Path, mixture_folders: list[Path] | None = None, where: str = "", limit: int = 200) -> dict:
    """Write the static copy into `out` (created; an existing non-empty folder must be an earlier export)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "index.html").is_file():
        raise InputError(f"{out} is not empty and holds no earlier export (no index.html); refusing to write into it",
                         hint="pass a new or empty folder to --export")
    with vq.session(store):  # one connection for the whole copy
        return _export(store, out, mixture_folders, where, limit)


def _export(store, out: Path, mixture_folders: list[Path] | None, where: str, limit: int) -> dict:
    env = environment()
    mixtures = mx.Mixtures(mx.find(mixture_folders or [], vq.recorded_manifests(store)))
    base_params = {"where": where} if where else {}
    q = pages.list_query(base_params)
    q.limit = limit
    chosen = [r["id"] for r in vq.trace_list(store, q, with_choices=False)["rows"]]
    links = ExportLinks(base_params, max(1, -(-len(chosen) // pages.PAGE)))
    links.trace_ids.update(chosen)
    problem_ids = list(dict.fromkeys(r for r in _problems_of(store, chosen)))
    links.problem_ids.update(problem_ids)
    runs = vq.eval_runs(store)
    # one explorer per training run (the run id its link names), each with its two filters
    explorers = list(dict.fromkeys((r["run"], r["benchmark"], r["suite"], r["link_id"]) for r in pages.explorers(runs)))
    links.grids.update((run, bench, suite, only, run_id) for run, bench, suite, run_id in explorers
                       for only in ("", "changed", "dip"))
    eval_traces: list[str] = []
    grids = []
    for run, bench, suite, run_id in explorers:
        for only in ("", "changed", "dip"):
            g = pages.grid(store, links, {"run": run, "benchmark": bench, "suite": suite, "only": only, "run_id": run_id})
            grids.append((links.grid(run, bench, suite, only, run_id=run_id), g, run_id))
            eval_traces += [c["sample_id"] for row in g["rows"] for cs in row["cells"].values() for c in cs]
    extra = [s for s in dict.fromkeys(eval_traces) if s not in links.trace_ids][:limit]
    links.trace_ids.update(extra)
    links.mixture_names.update(m.name for m in mixtures)

    out.mkdir(parents=True, exist_ok=True)
    base = {"links": links, "store_name": store.path.name, "nav": None}
    written = 0

    def write(name: str, template: str, ctx: dict) -> None:
        nonlocal written
        (out / name).write_text(env.get_template(template).render({**base, **ctx}), encoding="utf-8")
        written += 1

    write("index.html", "overview.html", pages.overview(store, links, mixtures))
    for page in range(1, links.list_pages + 1):
        ctx = pages.trace_list(store, links, {**base_params, "page": str(page)}, choices=False)
        ctx["rows"] = [r for r in ctx["rows"] if r["id"] in links.trace_ids]
        write(f"traces-{page}.html", "traces.html", ctx)
    order = chosen + extra
    for i, sid in enumerate(order):
        ring = chosen if i < len(chosen) else extra
        j = i if i < len(chosen) else i - len(chosen)
        nb = (ring[j - 1] if j > 0 else None, ring[j + 1] if j + 1 < len(ring) else None)
        ctx = pages.trace(store, links, mixtures, sid, base_params, neighbours=nb)
        if ctx is not None:
            write(f"trace-{sid}.html", "trace.html", ctx)
    for pid in problem_ids:
        ctx = pages.problem(store, links, pid)
        if ctx is not None:
            write(f"problem-{pid}.html", "problem.html", ctx)
    write("evals.html", "evals.html", pages.evals(store, links))
    for name, g, run_id in grids:  # rendered again: trace links now know which eval traces were exported
        write(name, "grid.html", pages.grid(store, links, {"run": g["run"], "benchmark": g["benchmark"],
                                                            "suite": g["suite"], "only": g["only"], "run_id": run_id}))
    write("mixtures.html", "mixtures.html", pages.mixture_list(links, mixtures))
    for m in mixtures:
        write(links.mixture(m.name), "mixture.html", pages.mixture(links, mixtures, m.name, {}))
    if (out / "static").exists():
        shutil.rmtree(out / "static")
    shutil.copytree(HERE / "static", out / "static")
    return {"out": str(out), "pages": written, "traces": len(order), "problems": len(problem_ids),
            "evaluations": len(runs), "mixtures": len(links.mixture_names), "index": str(out / "index.html")}


def _problems_of(store, sample_ids: list[str]) -> list[str]:
    return vq.problems_of(store, sample_ids) if sample_ids else []
