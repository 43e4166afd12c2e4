"""What each page of `curate view` shows, as plain data for its template (shared by the server and --export).

Page builders take the store, the mixtures, a `Links` (server URLs or the exported files' names) and the
request's parameters, and return the template's context. Nothing here writes HTML: templates autoescape
every value, and the answer diff is a list of (op, text) pieces the template escapes like any other value.
"""
from __future__ import annotations

import difflib
import json
import re
from typing import Mapping
from urllib.parse import urlencode

from curate.errors import InputError
from curate.features import THINK_CLOSE
from curate.evaluate.run_info import run_label
from curate.store import view_queries as vq
from curate.view import mixtures as mx

PAGE = 50
ANSWER_DIFF_CHARS = 4000


# ----------------------------------------------------------------------------------------------- links
class Links:
    """URLs of the server's pages. The export overrides these with file names (None: not exported)."""

    static_mode = False

    def static(self, name: str) -> str:
        return f"/static/{name}"

    def overview(self) -> str | None:
        return "/"

    def traces(self, params: Mapping | None = None) -> str | None:
        return "/traces" + _query(params)

    def trace(self, sample_id: str, ctx: Mapping | None = None) -> str | None:
        return f"/trace/{sample_id}" + _query(ctx)

    def problem(self, problem_id: str) -> str | None:
        return f"/problem/{problem_id}"

    def evals(self) -> str | None:
        return "/evals"

    def grid(self, run: str, benchmark: str, suite: str | None = None, only: str = "", page: int = 1,
             run_id: str = "") -> str | None:
        return "/evals/grid" + _query({"run": run, "run_id": run_id, "benchmark": benchmark, "suite": suite or "",
                                        "only": only, "page": page if page > 1 else ""})

    def mixtures(self) -> str | None:
        return "/mixtures"

    def mixture(self, name: str, page: int = 1) -> str | None:
        return f"/mixture/{name}" + _query({"page": page if page > 1 else ""})


def _query(params: Mapping | None) -> str:
    items = [(k, v) for k, v in (params or {}).items() if not (v is None or v is False or v == "")]  # 0 stays
    return ("?" + urlencode(items)) if items else ""


# ----------------------------------------------------------------------------------------------- list
def _number(raw: str, kind, name: str):
    try:
        return kind(raw)
    except ValueError:
        raise InputError(f"{name} must be a number, got {raw!r}") from None


def list_query(p: Mapping[str, str]) -> vq.ListQuery:
    """A ListQuery from URL parameters (the URL holds the whole filter, so a view can be shared)."""
    q = vq.ListQuery()
    q.eq = {c: p[c] for c in vq.CHOICES if p.get(c)}
    for col, kind in vq.RANGES.items():
        lo, hi = p.get(f"min_{col}", ""), p.get(f"max_{col}", "")
        if lo or hi:
            q.ranges[col] = (_number(lo, kind, f"min_{col}") if lo else None, _number(hi, kind, f"max_{col}") if hi else None)
    q.truncated = {"yes": True, "no": False}.get(p.get("truncated", ""))
    q.text = p.get("q", "").strip()
    q.in_text = p.get("in_text") == "1"
    q.where = p.get("where", "").strip()
    if p.get("sort") in vq.LIST_COLUMNS:
        q.sort = p["sort"]
    q.desc = p.get("desc", "1") != "0"
    page = max(1, int(_number(p.get("page", "1") or "1", int, "page")))
    q.offset, q.limit = (page - 1) * PAGE, PAGE
    return q


def list_params(q: vq.ListQuery, **changes) -> dict:
    """The URL parameters that describe `q` (defaults left out); `changes` override some."""
    p: dict = dict(q.eq)
    for col, (lo, hi) in q.ranges.items():
        p[f"min_{col}"] = "" if lo is None else lo
        p[f"max_{col}"] = "" if hi is None else hi
    p["truncated"] = {True: "yes", False: "no"}.get(q.truncated, "")
    p["q"], p["in_text"], p["where"] = q.text, "1" if q.in_text else "", q.where
    p["sort"] = "" if q.sort == "created_at" else q.sort
    p["desc"] = "" if q.desc else "0"
    page = q.offset // PAGE + 1
    p["page"] = page if page > 1 else ""
    p.update(changes)
    return {k: v for k, v in p.items() if v not in (None, "")}


def trace_list(store, links: Links, p: Mapping[str, str], choices: bool = True) -> dict:
    q = list_query(p)
    data = vq.trace_list(store, q, with_choices=choices)
    page = q.offset // PAGE + 1
    pages = max(1, -(-data["total"] // PAGE))
    for i, r in enumerate(data["rows"]):
        r["href"] = links.trace(r["id"], {**list_params(q, page=""), "pos": q.offset + i})
        r["problem_href"] = links.problem(r["problem_id"])
    sort_links = {c: links.traces(list_params(q, sort=c, desc="0" if (q.sort == c and q.desc) else "", page=""))
                  for c in vq.LIST_COLUMNS}
    return {
        "title": "traces", "q": q, "params": list_params(q), "rows": data["rows"], "total": data["total"],
        "choices": data["choices"], "columns": vq.LIST_COLUMNS, "ranges": list(vq.RANGES), "sort_links": sort_links,
        "page": page, "pages": pages,
        "prev_href": links.traces(list_params(q, page=page - 1)) if page > 1 else None,
        "next_href": links.traces(list_params(q, page=page + 1)) if page < pages else None,
    }


# ----------------------------------------------------------------------------------------------- overview
def overview(store, links: Links, mixtures: mx.Mixtures) -> dict:
    o = vq.overview(store)
    total = sum(r["n"] for r in o["traces"])

    def by(*cols):
        acc: dict[tuple, dict] = {}
        for r in o["traces"]:
            k = tuple(r[c] for c in cols)
            a = acc.setdefault(k, {**dict(zip(cols, k)), "n": 0, "correct": 0, "incorrect": 0, "other": 0, "unlabeled": 0})
            a["n"] += r["n"]
            s = r["status"]
            a[s if s in ("correct", "incorrect") else "unlabeled" if s is None else "other"] += r["n"]
        out = []
        for k, a in sorted(acc.items(), key=lambda kv: (-kv[1]["n"], str(kv[0]))):
            filt = {c: v for c, v in zip(cols, k) if v is not None}
            a["href"] = links.traces(filt)
            for s in ("correct", "incorrect", "unlabeled"):
                a[f"{s}_href"] = links.traces({**filt, "status": s})
            labelled = a["n"] - a["unlabeled"]
            a["correct_rate"] = a["correct"] / labelled if labelled else None
            out.append(a)
        return out

    verdicts = [{**r, "href": links.traces({"verifier": r["verifier"], "status": r["status"]})} for r in o["verdicts"]]
    evals = _eval_links(links, o["evals"])
    return {"title": "overview", "total": total, "by_source": by("source"), "by_model": by("model"),
            "by_split": by("split"), "by_status": by("status"), "by_source_model": by("source", "model"),
            "problems": o["problems"], "verdicts": verdicts, "evals": evals,
            "mixtures": [{"name": m.name, "href": links.mixture(m.name), "origin": m.origin} for m in mixtures]}


# ----------------------------------------------------------------------------------------------- trace
def split_text(text: str | None) -> tuple[str, str, bool]:
    """(thinking, answer, closed): thinking is before the last </think> without its <think> tag; a trace that
    opens <think> and never closes it is all thinking; one with no tag at all is all answer."""
    if not text:
        return "", "", False
    i = text.rfind(THINK_CLOSE)
    if i >= 0:
        thinking, answer = text[:i], text[i + len(THINK_CLOSE):]
        closed = True
    elif text.lstrip().startswith("<think>"):
        thinking, answer, closed = text, "", False
    else:
        return "", text, False
    thinking = re.sub(r"^\s*<think>", "", thinking, count=1)
    return thinking.strip("\n"), answer.strip("\n"), closed


def _pretty(raw) -> str:
    if raw is None:
        return ""
    try:
        return json.dumps(json.loads(raw) if isinstance(raw, str) else raw, indent=2, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return str(raw)


FEATURES = ("text_chars", "thinking_chars", "answer_chars", "thinking_tokens", "think_closed", "truncated", "boxed_count",
            "repetition_score", "backtrack_count", "verify_count", "non_ascii_ratio")
GENERATION = ("backend", "model", "revision", "sample_index", "seed", "finish_reason", "prompt_tokens",
              "completion_tokens", "teacher_logprob", "teacher_entropy", "latency_s", "run_id", "created_at")


def trace(store, links: Links, mixtures: mx.Mixtures, sample_id: str, p: Mapping[str, str],
          neighbours: tuple[str | None, str | None] | None = None) -> dict | None:
    listed = neighbours is None and p.get("pos", "").isdigit()  # server: the same listing, one row either side
    pos = int(p["pos"]) if listed else 0
    t = vq.trace(store, sample_id, list_query(p) if listed else None, pos)
    if t is None:
        return None
    text = t.pop("text")
    cut = text is not None and len(text) > vq.TEXT_LIMIT
    thinking, answer, closed = split_text(text[: vq.TEXT_LIMIT] if cut else text)
    up = {k: v for k, v in p.items() if k not in ("pos", "page")}
    nav: dict = {"up": links.traces({**up, "page": pos // PAGE + 1 if pos >= PAGE else ""})}  # the list's page it is on
    if listed:
        neighbours = t.pop("neighbours")
        ctx = {k: v for k, v in p.items() if k not in ("pos", "page")}
        nav["prev"] = links.trace(neighbours[0], {**ctx, "pos": pos - 1}) if neighbours[0] else None
        nav["next"] = links.trace(neighbours[1], {**ctx, "pos": pos + 1}) if neighbours[1] else None
    elif neighbours is not None:
        nav["prev"] = links.trace(neighbours[0]) if neighbours[0] else None
        nav["next"] = links.trace(neighbours[1]) if neighbours[1] else None
    return {
        "title": f"trace {sample_id[:12]}", "t": t, "thinking": thinking, "answer": answer, "closed": closed,
        "text_missing": text is None, "text_cut": cut, "nav": nav,
        "features": [(k, t.get(k)) for k in FEATURES], "generation": [(k, t.get(k)) for k in GENERATION],
        "params": _pretty(t.get("params")), "reference": _pretty(t.get("reference")), "metadata": _pretty(t.get("metadata")),
        "problem_href": links.problem(t["problem_id"]),
        "mixtures": [{"name": n, "href": links.mixture(n)} for n in mixtures.using(sample_id)],
    }


# ----------------------------------------------------------------------------------------------- problem
def answer_diff(a: str, b: str) -> list[tuple[str, str]]:
    """Word-level diff from `a` to `b` as (op, text) pieces: op is "same", "del" (only in a) or "ins" (only in b)."""
    wa, wb = re.split(r"(\s+)", a[:ANSWER_DIFF_CHARS]), re.split(r"(\s+)", b[:ANSWER_DIFF_CHARS])
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, wa, wb, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("same", "".join(wa[i1:i2])))
            continue
        if i2 > i1:
            out.append(("del", "".join(wa[i1:i2])))
        if j2 > j1:
            out.append(("ins", "".join(wb[j1:j2])))
    return out


def problem(store, links: Links, problem_id: str) -> dict | None:
    data = vq.problem_traces(store, problem_id)
    if data is None:
        return None
    traces = data["traces"]
    ref = next((t for t in traces if t["status"] == "correct"), None)
    ref_answer = split_text(ref["text"])[1] if ref else ""
    for t in traces:
        t["thinking"], t["final"], t["closed"] = split_text(t.pop("text"))
        t["href"] = links.trace(t["id"])
        t["diff"] = answer_diff(ref_answer, t["final"]) if ref is not None and t is not ref else None
    counts: dict[str, int] = {}
    for t in traces:
        counts[t["status"] or "unlabeled"] = counts.get(t["status"] or "unlabeled", 0) + 1
    return {"title": f"problem {problem_id[:12]}", "p": data["problem"], "traces": traces, "ref": ref, "counts": counts,
            "reference": _pretty(data["problem"].get("reference")), "metadata": _pretty(data["problem"].get("metadata")),
            "list_href": links.traces({"q": problem_id})}


# ----------------------------------------------------------------------------------------------- evals
def explorers(runs: list[dict]) -> list[dict]:
    """Rows of (run, run_id, suite, benchmark, ...) with a label that tells apart training runs sharing a name
    (`name [run 1a2b3c4d]`, as the report writes them) and `link_id`, the run_id their explorer link passes: the
    run id whenever one is known, so a link keeps pointing at that run when another is evaluated under the name
    later; `none` for samples without one beside runs that have one."""
    ids: dict[str, set[str]] = {}
    for r in runs:
        ids.setdefault(r["run"], set()).add(r["run_id"])
    out = []
    for r in runs:
        shared = len(ids[r["run"]]) > 1
        out.append({**r, "label": run_label(r["run"], r["run_id"]) if shared else r["run"],
                    "link_id": r["run_id"] or ("none" if shared else "")})
    return out


def _eval_links(links: Links, runs: list[dict]) -> list[dict]:
    return [{**r, "href": links.grid(r["run"], r["benchmark"], r["suite"], run_id=r["link_id"])} for r in explorers(runs)]


def evals(store, links: Links) -> dict:
    return {"title": "evaluations", "runs": _eval_links(links, vq.eval_runs(store))}


def step_label(step) -> str:
    return "?" if step is None else "base" if step == 0 else f"step {step}"


RUN_ID_CHARS = 200


def pick_run_id(run: str, runs: list[dict], wanted: str) -> str | None:
    """Which training run's samples the grid shows, from `runs` (eval_run_ids: newest first) and the URL's run_id
    (an id, its prefix, or `none` for samples without one): None when none was asked for (every sample under the
    name; the page lists the runs instead when there are several). InputError when it matches none or several."""
    if not wanted:
        return None
    if len(wanted) > RUN_ID_CHARS:
        raise InputError(f"run_id is longer than {RUN_ID_CHARS} characters")
    from curate.evaluate.compare import match_run_id

    known = [r["run_id"] for r in runs]
    return match_run_id(run, known, wanted, ", ".join(i or "none" for i in known) or "no evaluation", "samples")


def grid(store, links: Links, p: Mapping[str, str]) -> dict:
    run, bench, suite, only = p.get("run", ""), p.get("benchmark", ""), p.get("suite", "") or None, p.get("only", "")
    if not run or not bench:
        raise InputError("the eval explorer needs ?run=RUN&benchmark=BENCHMARK")
    only = only if only in ("changed", "dip") else ""
    page = max(1, int(_number(p.get("page", "1") or "1", int, "page")))
    runs = vq.eval_run_ids(store, run, bench, suite)
    run_id = pick_run_id(run, runs, p.get("run_id", ""))
    param = "" if run_id is None else run_id or "none"  # how this page's own links name the run
    for r in runs:
        r["label"] = r["run_id"] or "none (not scored, or no lineage)"
        r["href"] = links.grid(run, bench, suite, only, run_id=r["run_id"] or "none")
    title = f"{run_label(run, run_id)} · {bench}" if param else f"{run} · {bench}"
    base = {"title": title, "run": run, "run_id": run_id, "benchmark": bench, "suite": suite or "", "only": only,
            "runs": runs, "page": page}
    if run_id is None and sum(1 for r in runs if r["run_id"]) > 1:
        # the name stands for several training runs: one grid would mix their checkpoints and answers
        return {**base, "choose": True, "steps": [], "rows": [], "total": 0, "pages": 1, "filters": {},
                "prev_href": None, "next_href": None, "others": []}
    data = vq.eval_grid(store, run, bench, suite, only, (page - 1) * PAGE, PAGE, run_id=run_id)
    steps = [s["step"] for s in data["steps"]]
    last = steps[-1] if steps else None
    head = [{**s, "label": "final" if s["step"] == last and len(steps) > 1 else step_label(s["step"]),
             "rate": s["correct"] / s["samples"] if s["samples"] else None} for s in data["steps"]]
    rows: dict[str, dict] = {}
    for c in data["cells"]:
        r = rows.setdefault(c["problem_id"], {"problem_id": c["problem_id"], "prompt": c["prompt"] or "",
                                              "href": links.problem(c["problem_id"]), "cells": {s: [] for s in steps}})
        c["href"] = links.trace(c["sample_id"])
        r["cells"].setdefault(c["step"], []).append(c)
    pages = max(1, -(-data["total"] // PAGE))
    return {**base, "choose": False, "steps": head, "rows": [rows[pid] for pid in data["problems"] if pid in rows],
            "total": data["total"], "pages": pages,
            "others": [r for r in runs if run_id is not None and r["run_id"] != run_id],
            "filters": {o: links.grid(run, bench, suite, o, run_id=param) for o in ("", "changed", "dip")},
            "prev_href": links.grid(run, bench, suite, only, page - 1, param) if page > 1 else None,
            "next_href": links.grid(run, bench, suite, only, page + 1, param) if page < pages else None}


# ----------------------------------------------------------------------------------------------- mixtures
def mixture_list(links: Links, mixtures: mx.Mixtures) -> dict:
    out = []
    for ref in mixtures:
        m = mx.manifest(ref)
        out.append({"name": ref.name, "href": links.mixture(ref.name), "path": str(ref.path), "origin": ref.origin,
                    "rows": m.get("rows"), "recipe_hash": m.get("recipe_hash"), "recipe": m.get("name")})
    return {"title": "mixtures", "mixtures": out}


def mixture(links: Links, mixtures: mx.Mixtures, name: str, p: Mapping[str, str]) -> dict | None:
    ref = mixtures.get(name)
    if ref is None:
        return None
    page = max(1, int(_number(p.get("page", "1") or "1", int, "page")))
    rows, total = mx.rows(ref, (page - 1) * PAGE, PAGE)
    for r in rows:
        r["href"] = links.trace(r["sample_id"]) if r.get("sample_id") else None
        r["problem_href"] = links.problem(r["problem_id"]) if r.get("problem_id") else None
    m = mx.manifest(ref)
    dec = m.get("decontamination") or {}
    hits = [{"benchmark": b, "action": a, "rows": n} for b, c in sorted((dec.get("hits") or {}).items())
            for a, n in sorted(c.items())] if isinstance(dec.get("hits"), dict) else []
    pages = max(1, -(-total // PAGE))
    return {"title": f"mixture {name}", "ref": ref, "m": m, "card": mx.card(ref), "rows": rows, "total": total,
            "composition": m.get("composition") or [], "decontamination": {k: v for k, v in dec.items() if k != "hits"},
            "hits": hits, "dropped": m.get("dropped") or {}, "page": page, "pages": pages,
            "prev_href": links.mixture(name, page - 1) if page > 1 else None,
            "next_href": links.mixture(name, page + 1) if page < pages else None}
