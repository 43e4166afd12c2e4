"""Published results into the `evals` table, and the wide per-checkpoint view `curate evals` prints.

`import_results(store, FILE)` reads a CSV or JSONL with the columns `run,benchmark,step,value` and optional
`metric,ci_low,ci_high,suite` (for example the study's published curves), so a user's own runs sit in the same
table as the numbers they want to reproduce. Imported rows carry `provenance = imported:<file name>`, suite
`imported` unless given, an empty checkpoint and the settings hash `imported`: a row is keyed by (run, suite,
benchmark, metric, step), so a run split over two files is one curve, and importing a file again replaces
what its earlier import wrote (rows deleted from the file leave the table). Two lines of one file with the same
key are refused with their line numbers unless `last_wins`. Values are taken as written (the study reports
percent).

`wide(rows)` pivots result rows to one row per (run, run id, step, suite) with one column per benchmark (its headline
metric) plus the response-length and truncation columns, so a dip is read next to its length spike.
Test: tests/test_evaluate.py.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from curate.errors import InputError
from curate.sources import read_jsonl
from curate.store.evals import write_evals

REQUIRED = ("run", "benchmark", "step", "value")
OPTIONAL = ("metric", "ci_low", "ci_high", "suite")
BEHAVIOUR_COLUMNS = ("mean_tokens", "truncation_rate")


def _rows(path: Path):
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        yield from read_jsonl(path)
        return
    if path.suffix.lower() != ".csv":
        raise InputError(f"{path}: unsupported file type {path.suffix or '(none)'}", hint="use .csv or .jsonl")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames:
                raise InputError(f"{path}: empty file (expected a header {','.join(REQUIRED)})")
            for n, row in enumerate(reader, start=2):
                if None in row:
                    raise InputError(f"{path}:{n}: more fields than the header has")
                yield n, row
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not valid UTF-8 ({e.reason})") from None
    except csv.Error as e:
        raise InputError(f"{path}: malformed CSV ({e})") from None


def _number(path: Path, n: int, field: str, raw, integer: bool = False):
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        v = int(str(raw).strip()) if integer else float(raw)
    except (TypeError, ValueError):
        kind = "an integer" if integer else "a number"
        raise InputError(f"{path}:{n}: {field}: expected {kind}, got {raw!r}") from None
    if not integer and not math.isfinite(v):
        raise InputError(f"{path}:{n}: {field}: expected a finite number, got {raw!r}")
    if integer and v < 0:
        raise InputError(f"{path}:{n}: {field}: a step is >= 0, got {v}")
    return v


IMPORTED_SETTINGS = "imported"


def parse_results(path: str | Path, run: str | None = None, last_wins: bool = False) -> list[dict]:
    """Validate every row of a published-results file; errors name the file, line and field. A key (run,
    suite, benchmark, metric, step) given twice is an error naming both lines, unless `last_wins`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    out: list[dict] = []
    seen: dict[tuple, int] = {}
    duplicates: list[str] = []
    for n, r in _rows(path):
        unknown = sorted(set(r) - set(REQUIRED) - set(OPTIONAL))
        if unknown:
            raise InputError(f"{path}:{n}: unknown column(s) {', '.join(unknown)}",
                             hint=f"columns are {','.join(REQUIRED)} and optionally {','.join(OPTIONAL)}")
        for field in REQUIRED:
            if field == "run" and run:
                continue
            if r.get(field) is None or str(r.get(field)).strip() == "":
                raise InputError(f"{path}:{n}: {field}: required field missing")
        value = _number(path, n, "value", r["value"])
        lo, hi = _number(path, n, "ci_low", r.get("ci_low")), _number(path, n, "ci_high", r.get("ci_high"))
        if lo is not None and hi is not None and lo > hi:
            raise InputError(f"{path}:{n}: ci_low {lo} is above ci_high {hi}")
        row = {
            "run": run or str(r["run"]).strip(), "checkpoint": "", "step": _number(path, n, "step", r["step"], integer=True),
            "suite": str(r.get("suite") or "imported").strip(), "benchmark": str(r["benchmark"]).strip(),
            "metric": str(r.get("metric") or "avg@1").strip(), "kind": "score", "value": value, "ci_low": lo,
            "ci_high": hi, "complete": True, "settings_hash": IMPORTED_SETTINGS,
            "provenance": f"imported:{path.name}", "details": {"file": str(path.resolve()), "line": n},
        }
        key = (row["run"], row["suite"], row["benchmark"], row["metric"], row["step"])
        if key in seen:
            duplicates.append(f"lines {seen[key]} and {n} ({row['run']} {row['benchmark']} {row['metric']} step {row['step']})")
            if not last_wins:
                continue
            out = [o for o in out if (o["run"], o["suite"], o["benchmark"], o["metric"], o["step"]) != key]
        seen[key] = n
        out.append(row)
    if duplicates and not last_wins:
        raise InputError(f"{path}: {len(duplicates)} repeated row(s): " + "; ".join(duplicates[:5])
                         + (f"; and {len(duplicates) - 5} more" if len(duplicates) > 5 else ""),
                         hint="keep one line per run, benchmark, metric and step, or pass --last-wins to keep the last")
    if not out:
        raise InputError(f"{path}: no rows")
    return out


def import_results(store, path: str | Path, run: str | None = None, last_wins: bool = False) -> dict:
    """Import a published-results file into `evals`; rows an earlier import of the same file wrote are replaced
    (a row no longer in the file is removed). `rows` counts the file's rows, `written` the rows that changed."""
    rows = parse_results(path, run, last_wins)
    warnings = scale_warnings(store, rows)
    written = write_evals(store, rows, replace=True)
    return {"file": str(path), "rows": len(rows), "written": written, "runs": sorted({r["run"] for r in rows}),
            "benchmarks": sorted({r["benchmark"] for r in rows}), "warnings": warnings}


def scale_warnings(store, rows: list[dict]) -> list[str]:
    """Benchmark-metrics whose imported values all lie in [0, 1] while the store (or the file) holds percent
    values above 1 for them, or the other way round: fractions next to percent curves, said, not fixed."""
    from curate.store.evals import score_value_ranges

    stored = score_value_ranges(store, sorted({r["benchmark"] for r in rows}))
    out = []
    for key in sorted({(r["benchmark"], r["metric"]) for r in rows}):
        mine = [abs(r["value"]) for r in rows if (r["benchmark"], r["metric"]) == key]
        other = stored.get(key)
        if other is None or not mine or max(mine) == 0 or other == 0:
            continue
        if max(mine) <= 1.0 < other:
            out.append(f"{key[0]} {key[1]}: the imported values are all in [0, 1] while the store's reach {other:g}: "
                       "fractions next to percent? curate stores percent (0-100)")
        elif other <= 1.0 < max(mine):
            out.append(f"{key[0]} {key[1]}: the store's values are all in [0, 1] while the imported ones reach "
                       f"{max(mine):g}: percent next to fractions?")
    return out


HEADLINE_ORDER = ("avg@", "asr", "pass@", "maj@")


def headline_rank(metric: str) -> tuple:
    """Which score metric heads a benchmark (lowest first): avg@k, then asr, pass@k, maj@k, then any other."""
    return (next((i for i, p in enumerate(HEADLINE_ORDER) if metric.startswith(p)), len(HEADLINE_ORDER)), metric)


def _headline_rows(rows: list[dict]) -> dict[tuple, dict]:
    """(run, run id, step, suite, benchmark) -> its headline score row (the first row of that metric, newest)."""
    best: dict[tuple, dict] = {}
    for r in rows:
        if r["kind"] != "score":
            continue
        key = (r["run"], r.get("run_id"), r["step"], r["suite"], r["benchmark"])
        if key not in best or headline_rank(r["metric"]) < headline_rank(best[key]["metric"]):
            best[key] = r
    return best


def headline_metrics(rows: list[dict]) -> dict[str, list[str]]:
    """Benchmark -> the headline metrics `wide` shows for it (one, unless runs differ in what they measured)."""
    out: dict[str, set] = {}
    for (_, _, _, _, bench), r in _headline_rows(rows).items():
        out.setdefault(bench, set()).add(r["metric"])
    return {b: sorted(m, key=headline_rank) for b, m in out.items()}


def wide(rows: list[dict], digits: int | None = 1) -> list[dict]:
    """One row per (run, run id, step, suite): each benchmark's headline score (ranked as the report ranks them:
    avg@k, asr, pass@k, maj@k), then length and truncation averaged over the benchmarks; an incomplete benchmark
    shows as `incomplete`, never a number. `digits=None` keeps full precision (CSV and JSON)."""
    rnd = (lambda v: v) if digits is None else (lambda v: round(v, digits))
    table: dict[tuple, dict] = {}
    behaviour: dict[tuple, dict[str, list[float]]] = {}
    for r in rows:  # two training runs with one name (cells of two studies) stay apart by their run id
        key = (r["run"], r.get("run_id"), r["step"], r["suite"])
        table.setdefault(key, {"run": r["run"], "run_id": r.get("run_id"), "step": r["step"], "suite": r["suite"]})
        if r["kind"] != "score" and r["metric"] in BEHAVIOUR_COLUMNS and r["value"] is not None:
            behaviour.setdefault(key, {}).setdefault(r["metric"], []).append(r["value"])
    for (run, run_id, step, suite, bench), r in _headline_rows(rows).items():
        table[(run, run_id, step, suite)][bench] = "incomplete" if not r["complete"] or r["value"] is None else rnd(r["value"])
    for key, out in table.items():
        for m in BEHAVIOUR_COLUMNS:
            vals = behaviour.get(key, {}).get(m)
            if vals:
                out[m] = rnd(sum(vals) / len(vals))
    ordered = sorted(table.values(), key=lambda d: (d["run"], d["run_id"] or "", d["step"] is None, d["step"] or 0, d["suite"]))
    ids: dict[str, set] = {}
    for d in ordered:
        ids.setdefault(d["run"], set()).add(d["run_id"])
    keys = ["run", "run_id", "step", "suite"] if any(len(v) > 1 for v in ids.values()) else ["run", "step", "suite"]
    cols = keys + sorted({c for d in ordered for c in d} - {"run", "run_id", "step", "suite"} - set(BEHAVIOUR_COLUMNS)) \
        + [c for c in BEHAVIOUR_COLUMNS if any(c in d for d in ordered)]
    return [{c: d.get(c) for c in cols} for d in ordered]
