"""`curate import`: bring existing trace datasets into the store (problems, samples, and their labels).

Presets map the formats people actually have onto curate's fields; `--map field=column` overrides any:
- generic  : prompt | question | problem, response (str or list), answer            (one row -> n samples)
- pool     : the study's pool: `message` (chat list), `response`, `answer`, teacher logprob/entropy
- openr1_math : OpenR1-Math (the `tasks add openr1_math` questions, with their traces): `problem`, `generations` (list), `answer`, `solution`,
             `correctness_math_verify` (list, becomes verdicts), `finish_reasons` (list)
- sharegpt : `conversations` [{from|role, value|content}]: first human turn -> prompt, gpt turns -> samples
- numinamath : NuminaMath (the `tasks add numinamath` questions): `problem`, `solution`, `answer`; problems only (the short human solution is kept in
             metadata["solution"] for the `reference_solution` recipe knob)
Ids are content hashes, so importing the same file twice stores nothing new. An interrupted import resumes
where its last committed chunk ended: the store records, per source fingerprint (path, size, mtime and the
import's options), how many rows are committed (and, for JSONL, the byte offset after them), so a rerun
seeks past them instead of re-reading and rewriting them. A changed file has a new fingerprint and is read
in full. A bad row (or a malformed JSONL line) stops the import with its row number and field (earlier
chunks stay stored and are skipped on the rerun), or is skipped and listed with `skip_bad`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from curate.errors import InputError
from curate.records import Problem, Sample, Verdict, content_hash
from curate.sources import fingerprint, iter_rows
from curate.store import TraceStore

STUDY_SUFFIX = "\nPlease reason step by step, and put your final answer within \\boxed{}."
FIELDS = ("prompt", "response", "answer", "solution", "messages", "conversations", "correct", "finish_reason",
          "logprob", "entropy", "source", "model")


@dataclass(frozen=True)
class Preset:
    name: str
    columns: dict[str, str]  # curate field -> column name
    model: str = "unknown"
    params: dict = field(default_factory=dict)
    domain: str = "math"
    verifier: str | None = None  # label name for imported correctness lists
    traces: bool = True  # False: a problems-only dataset (a row needs no response)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("generic", {"prompt": "prompt", "response": "response", "answer": "answer"}),
        Preset("pool", {"messages": "message", "response": "response", "answer": "answer", "logprob": "logprob", "entropy": "entropy"},
               model="Qwen/Qwen3-32B", params={"temperature": 0.6, "top_p": 0.95, "top_k": 20, "max_tokens": 16384}),
        Preset("openr1_math", {"prompt": "problem", "response": "generations", "answer": "answer", "solution": "solution",
                          "correct": "correctness_math_verify", "finish_reason": "finish_reasons"},
               model="deepseek-ai/DeepSeek-R1", verifier="import:math_verify"),
        Preset("sharegpt", {"conversations": "conversations", "answer": "answer"}),
        Preset("numinamath", {"prompt": "problem", "solution": "solution", "answer": "answer"}, traces=False),
    ]
}
PROMPT_FALLBACKS = ("prompt", "question", "problem")


@dataclass
class ImportReport:
    rows: int = 0
    problems: int = 0
    samples: int = 0
    verdicts: int = 0
    resumed_after: int = 0  # input rows committed by an earlier, interrupted run of this import (not re-read)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"--map {item!r}: expected FIELD=COLUMN, e.g. response=generation")
        k, v = (x.strip() for x in item.split("=", 1))
        if k not in FIELDS:
            raise InputError(f"--map {item!r}: unknown field {k!r}; fields are {', '.join(FIELDS)}")
        out[k] = v
    return out


class _BadRow(Exception):
    def __init__(self, field: str, column: str | None, why: str):
        super().__init__(why)
        self.field, self.column, self.why = field, column, why


def _get(row: dict, cols: dict, name: str, required: bool = False) -> Any:
    col = cols.get(name)
    if col is None or col not in row:
        if required:
            raise _BadRow(name, col, "column missing")
        return None
    return row[col]


def _text(value: Any, fld: str, col: str | None) -> str:
    if not isinstance(value, str):
        raise _BadRow(fld, col, f"expected text, got {type(value).__name__}")
    if not value.strip():
        raise _BadRow(fld, col, "empty")
    return value


def _turns(conv: Any, fld: str, col: str | None) -> list[tuple[str, str]]:
    if not isinstance(conv, list) or not conv:
        raise _BadRow(fld, col, "expected a non-empty list of chat turns")
    out = []
    for t in conv:
        if not isinstance(t, dict):
            raise _BadRow(fld, col, "each turn must be an object")
        role = str(t.get("role", t.get("from", ""))).lower()
        role = {"human": "user", "gpt": "assistant", "model": "assistant"}.get(role, role)
        out.append((role, t.get("content", t.get("value"))))
    return out


def _mean(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v):
        return float(sum(v) / len(v))
    return None


def _row_to_records(row: dict, cols: dict, preset: Preset, source: str, domain: str, split: str) -> tuple[Problem, list[dict]]:
    """One input row -> its problem and a list of response dicts (text, finish_reason, correct, stats)."""
    responses: list[dict] = []
    chat = next((f for f in ("conversations", "messages") if f in cols and cols[f] in row), None)
    if chat:
        col = cols[chat]
        turns = _turns(row[col], chat, col)
        first = next((i for i, (r, _) in enumerate(turns) if r == "user"), None)
        if first is None:
            raise _BadRow(chat, col, "no user turn")
        prompt = _text(turns[first][1], chat, col)
        # Assistant turns after the question are responses, unless the row has a separate response column.
        if cols.get("response") not in row:
            responses = [{"text": _text(c, chat, col)} for r, c in turns[first + 1:] if r == "assistant"]
    else:
        prompt_col = cols.get("prompt")
        if prompt_col not in row:
            prompt_col = next((c for c in PROMPT_FALLBACKS if c in row), prompt_col)
        prompt = _text(_get(row, {"prompt": prompt_col}, "prompt", required=True), "prompt", prompt_col)
    if prompt.endswith(STUDY_SUFFIX):  # the study's template is re-applied when mixing; keep the bare question
        prompt = prompt[: -len(STUDY_SUFFIX)]

    if not responses and "response" in cols:
        resp = _get(row, cols, "response", required=preset.traces)
        if resp is not None:
            items = resp if isinstance(resp, list) else [resp]
            if isinstance(resp, list) and not resp:
                raise _BadRow("response", cols["response"], "empty list of responses")
            corr = _get(row, cols, "correct")
            fins = _get(row, cols, "finish_reason")
            for i, r in enumerate(items):
                d = {"text": _text(r, "response", cols["response"])}
                if isinstance(corr, list) and i < len(corr) and corr[i] is not None:
                    d["correct"] = bool(corr[i])
                elif isinstance(corr, bool) and not isinstance(resp, list):
                    d["correct"] = corr
                fr = fins[i] if isinstance(fins, list) and i < len(fins) else fins
                d["finish_reason"] = fr if fr in ("stop", "length") else "unknown"
                responses.append(d)
    lp, ent = _mean(_get(row, cols, "logprob")), _mean(_get(row, cols, "entropy"))
    for d in responses:
        d.setdefault("logprob", lp)
        d.setdefault("entropy", ent)

    answer = _get(row, cols, "answer")
    if isinstance(answer, float) and not math.isfinite(answer):
        raise _BadRow("answer", cols.get("answer"), f"{answer} is not an answer (a number must be finite)")
    reference = None if answer is None else (answer if isinstance(answer, (str, int, float)) else str(answer))
    meta: dict = {}
    sol = _get(row, cols, "solution")
    if isinstance(sol, str) and sol.strip():
        meta["solution"] = sol
    row_source = _get(row, cols, "source")
    if isinstance(row_source, str):
        meta["origin"] = row_source
    return Problem(source=source, domain=domain, prompt=prompt, reference=reference, metadata=meta, split=split), responses


def _stored_before_error(rows, flush: Callable[[], int]):
    """The source's rows; a malformed one still stops the import, after what came before it is committed."""
    it = iter(rows)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except InputError as e:
            if flush():
                e.message += "; rows before it are stored and will be skipped when you rerun"
            raise
        yield item


def import_dataset(store: TraceStore, source: str, *, preset: str = "generic", mapping: dict[str, str] | None = None,
                   source_name: str | None = None, domain: str | None = None, split: str = "train",
                   model: str | None = None, hf_split: str = "train", skip_bad: bool = False, chunk_rows: int = 5000,
                   progress: Callable[[ImportReport], None] | None = None) -> ImportReport:
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; presets are {', '.join(PRESETS)}")
    if split not in ("train", "eval"):
        raise InputError(f"--split must be train or eval, got {split!r}")
    p = PRESETS[preset]
    cols = {**p.columns, **(mapping or {})}
    name = source_name or (preset if preset != "generic" else source.rstrip("/").split("/")[-1].split(".")[0])
    dom = domain or p.domain
    mdl = model or p.model
    run_id = "import-" + content_hash(source, preset, cols)[:12]
    store.check_writable()
    source_key = content_hash(fingerprint(source, hf_split), preset, cols, name, dom, split, mdl)
    done_rows, done_offset, seen_per_problem = store.import_progress(source_key)
    report = ImportReport(resumed_after=done_rows)
    position = {"rows": done_rows, "offset": done_offset, "recorded": done_rows}
    problems: dict[str, Problem] = {}
    samples: list[Sample] = []
    labels: list[Verdict] = []
    checked_columns = False

    def flush() -> int:
        """Commit the buffered rows and then their progress mark; returns the input rows committed so far."""
        if problems:
            report.problems += store.add_problems(problems.values())
        if samples:
            report.samples += store.add_samples(samples)
        if labels:
            report.verdicts += store.add_verdicts(labels)
        problems.clear()
        samples.clear()
        labels.clear()
        if position["rows"] > position["recorded"]:  # only after the rows' data is committed
            store.record_import_progress(source_key, run_id, position["rows"], position["offset"])
            position["recorded"] = position["rows"]
        if progress:
            progress(report)
        return position["recorded"]

    rows = iter_rows(source, hf_split, start_row=done_rows, start_offset=done_offset,
                     on_bad=report.skipped.append if skip_bad else None)
    for n, row, offset in _stored_before_error(rows, flush):
        if not checked_columns:  # a mapping naming a column that does not exist is an error, not a bad row
            checked_columns = True
            for fld, col in (mapping or {}).items():
                if col not in row:
                    raise InputError(f"{source}: --map {fld}={col}: no column {col!r} (columns: {', '.join(sorted(row))})")
        report.rows += 1
        try:
            prob, responses = _row_to_records(row, cols, p, name, dom, split)
        except _BadRow as e:
            where = f"field '{e.field}'" + (f" (column '{e.column}')" if e.column and e.column != e.field else "")
            msg = f"{source}: row {n}: {where}: {e.why}"
            if not skip_bad:
                flush()
                stored = f"; rows before {n} are stored and will be skipped when you rerun" if n > 1 else ""
                raise InputError(msg + stored, hint="fix the row, or pass --skip-bad to skip such rows") from None
            report.skipped.append(msg)
            position.update(rows=n, offset=offset)
            continue
        problems.setdefault(prob.id, prob)
        for r in responses:
            idx = seen_per_problem.get(prob.id, 0)
            seen_per_problem[prob.id] = idx + 1
            s = Sample(problem_id=prob.id, text=r["text"], backend="import", model=mdl, params=p.params, sample_index=idx,
                       finish_reason=r.get("finish_reason", "unknown"), teacher_logprob=r.get("logprob"),
                       teacher_entropy=r.get("entropy"), run_id=run_id)
            samples.append(s)
            if "correct" in r:
                labels.append(Verdict(status="correct" if r["correct"] else "incorrect", verifier=p.verifier or f"import:{preset}",
                                      version=preset, score=1.0 if r["correct"] else 0.0, reason="label shipped with the dataset",
                                      sample_id=s.id))
        position.update(rows=n, offset=offset)
        if len(samples) >= chunk_rows or len(problems) >= chunk_rows:
            flush()
    flush()
    if report.rows == 0 and done_rows == 0:
        raise InputError(f"{source}: no rows to import")
    return report
