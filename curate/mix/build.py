"""Recipe + store -> the rows of a training mixture (selection, dedup, decontamination, quality knobs).

Order of work, all deterministic for a fixed recipe and store (`build` = `select` then `finish`):
1. For each source, DuckDB picks one trace per problem (or all correct ones) and, when the recipe
   asks for incorrect traces, the verified-incorrect trace of the same problem nearest in length
   bucket; problems come back ranked by md5(seed:problem:prompt key), so the same question ranks the
   same in every pool it was imported from.
2. Problems are taken in rank order, skipping those taken by an earlier source, duplicate prompts,
   questions outside `selection.same_questions_as`, and (action `drop`) prompts or traces sharing a
   non-template n-gram (or, for keyed tasks like Countdown, the key) with an eval-split problem, until
   the source's quota is met. Which problems survive does not depend on the quality knobs, so every
   point of an incorrect-fraction sweep trains on the same questions (and shares one `select`).
3. `finish`, quality knobs: round(f * rows) problems swap their correct trace for the matched incorrect
   one (the incorrect trace nearest in length bucket to the correct one it replaces), then truncation,
   thinking removal or reference solutions.
A mixture that comes up short names its cause when it is not the filters (`shortage_cause`): a source
predicate that matches no trace, or no verified-incorrect traces where the recipe needs them.
Test: tests/test_mix*.py.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from curate.errors import ConfigError, StoreError
from curate.mix import transforms
from curate.mix.clean import EvalIndex, PromptDeduper
from curate.mix.recipe import Recipe
from curate.records import canonical_json
from curate.store import selection
from curate.tasks import problem_key

MIN_BATCH = 256
REQUIRE_INCORRECT_HINT = ("set selection.require_incorrect: true (--set selection.require_incorrect=true) to draw only "
                          "problems that have one")


@dataclass
class Mixture:
    """The rows of a mixture plus everything its card reports."""

    recipe: Recipe
    rows: list[dict]
    requested: dict[str, int]
    dropped: Counter = field(default_factory=Counter)
    contamination: dict = field(default_factory=dict)
    eval_problems: int = 0
    eval_index: dict = field(default_factory=dict)
    matching: dict = field(default_factory=dict)
    incorrect: dict = field(default_factory=dict)
    snapshot: dict = field(default_factory=dict)
    verifiers: list = field(default_factory=list)


def _key(*parts: Any) -> str:
    return hashlib.md5(":".join(str(p) for p in parts).encode()).hexdigest()


def allocate(recipe: Recipe) -> dict[str, int]:
    """Rows per source: quotas as given, the rest split by weight (default 1) with largest remainders."""
    out = {s.name: s.quota for s in recipe.sources if s.quota is not None}
    weighted = [s for s in recipe.sources if s.quota is None]
    rest = recipe.size - sum(out.values())
    if weighted:
        total = sum(s.weight or 1.0 for s in weighted)
        exact = [(s.name, rest * (s.weight or 1.0) / total) for s in weighted]
        base = {n: int(math.floor(x)) for n, x in exact}
        left = rest - sum(base.values())
        for n, _ in sorted(exact, key=lambda nx: (-(nx[1] - math.floor(nx[1])), [s.name for s in weighted].index(nx[0])))[:left]:
            base[n] += 1
        out.update(base)
    return {s.name: out[s.name] for s in recipe.sources}


def _problem_key(row: dict) -> Optional[str]:
    """The task's structured key for this problem (Countdown: numbers and target), or None."""
    ref = row.get("reference")
    return problem_key(row.get("source") or "", json.loads(ref) if isinstance(ref, str) else ref)


def _response_ok(text: Optional[str], strip: bool) -> Optional[str]:
    if text is None:
        return None
    return transforms.strip_thinking(text) if strip else text


class _Taker:
    """Walks ranked problems of one source and accepts those that pass dedup and decontamination."""

    def __init__(self, store: Any, recipe: Recipe, dedup: PromptDeduper, index: Optional[EvalIndex], mix: Mixture,
                 say: Callable[[str], None]) -> None:
        self.store, self.recipe, self.dedup, self.index, self.mix, self.say = store, recipe, dedup, index, mix, say
        self.contam: dict[str, Counter] = defaultdict(Counter)

    def _contaminated(self, field_name: str, text: str, key: Optional[str] = None) -> set[str]:
        d = self.recipe.decontaminate
        if self.index is None or field_name not in d.check:
            return set()
        return self.index.hits(text, key)

    def take(self, source: str, table, quota: int, taken: set[str]) -> list[dict]:
        recipe, q = self.recipe, self.recipe.quality
        by_problem: dict[str, list[dict]] = defaultdict(list)
        order: list[str] = []
        for row in table.to_pylist():
            if row["problem_id"] not in by_problem:
                order.append(row["problem_id"])
            by_problem[row["problem_id"]].append(row)
        accepted: list[dict] = []
        n_rows = 0
        i = 0
        while n_rows < quota and i < len(order):
            # Fetch text for a little more than what is still missing: every fetch scans the shards once,
            # so a few large batches beat many small ones.
            step = max(MIN_BATCH, int((quota - n_rows) * 1.1) + 64)
            batch = [p for p in order[i:i + step] if p not in taken]
            i += step
            ids = []
            if not q.reference_solution:  # reference rows need no trace text
                for p in batch:
                    for r in by_problem[p]:
                        ids.append(r["sample_id"])
                        if r.get("neg_id"):
                            ids.append(r["neg_id"])
            self.say(f"source {source}: {n_rows}/{quota} rows, reading {len(ids)} traces")
            text = selection.texts(self.store, ids) if ids else {}
            for p in batch:
                if n_rows >= quota:
                    break
                rows = by_problem[p]
                first = rows[0]
                if first.get("matched") is False:
                    self.mix.dropped["question not in same_questions_as pool"] += 1
                    continue
                key = _problem_key(first)
                reason, handle = self.dedup.check(first["prompt"], key)
                if reason:
                    self.mix.dropped[f"duplicate prompt ({reason})"] += 1
                    continue
                hits = self._contaminated("prompt", first["prompt"], key)
                for b in hits:
                    self.contam[b]["prompt"] += 1
                if hits and recipe.decontaminate.action == "drop":
                    self.mix.dropped["contaminated"] += 1
                    taken.add(p)  # a later source would drop (and count) it again
                    continue
                out = self._rows_for(p, rows, text)
                if out is None:
                    continue
                take = out[: quota - n_rows]
                self.dedup.add(handle)
                taken.add(p)
                accepted.extend(take)
                n_rows += len(take)
        self.say(f"source {source}: {n_rows}/{quota} rows")
        for r in accepted:
            r["source_name"] = source
        return accepted

    def _rows_for(self, pid: str, rows: list[dict], text: dict[str, str]) -> Optional[list[dict]]:
        """The finished candidate rows of one problem, or None (with the reason counted) if it is out."""
        recipe, q = self.recipe, self.recipe.quality
        out = []
        trace_hits: set[str] = set()
        for r in rows:
            r = dict(r)
            if q.reference_solution:
                ref = json.loads(r["reference"]) if r["reference"] is not None else None  # JSON text from the store
                resp, kind = transforms.reference_solution(ref, r.get("solution")), "reference_solution"
                if resp is None and q.reference_fallback == "boxed_answer":
                    resp, kind = transforms.boxed_answer(ref), "reference_answer"
                if resp is None:
                    self.mix.dropped["no reference solution"] += 1
                    return None
                r["response"], r["status"], r["sample_id"], r["tokens"], r["tokens_est"] = resp, "reference", None, None, None
                r["reference_kind"] = kind
                trace_hits |= self._contaminated("trace", resp)
            else:
                raw = text.get(r["sample_id"])
                resp = _response_ok(raw, q.strip_thinking)
                if resp is None:
                    self.mix.dropped["thinking never closes" if raw is not None else "text missing"] += 1
                    return None
                r["response"] = resp
                trace_hits |= self._contaminated("trace", raw)
            neg = r.pop("neg_id", None)
            r["neg"] = None
            if neg and not q.reference_solution:
                raw_neg = text.get(neg)
                neg_resp = _response_ok(raw_neg, q.strip_thinking)
                neg_hits = self._contaminated("trace", raw_neg) if raw_neg is not None else set()
                if neg_resp is not None and not (neg_hits and recipe.decontaminate.action == "drop"):
                    r["neg"] = {"sample_id": neg, "response": neg_resp, "tokens": r.get("neg_tokens"),
                                "tokens_est": r.get("neg_tokens_est"), "bucket": r.get("neg_bucket")}
            if recipe.selection.require_incorrect and r["neg"] is None and not q.reference_solution:
                self.mix.dropped["incorrect trace unusable"] += 1
                return None
            out.append(r)
        for b in trace_hits:
            self.contam[b]["trace"] += 1
        if trace_hits and recipe.decontaminate.action == "drop":
            self.mix.dropped["contaminated"] += 1
            return None
        return out


# Problem sources the synthetic backend writes traces for (it can be told to get a share of them wrong).
SYNTHETIC_SOURCES = ("countdown", "chain_sum")


def _no_incorrect_hint(sources: list[str]) -> str:
    """A `curate generate` that yields verified-incorrect traces for these problem sources, then labels them."""
    synthetic = [s for s in sources if s in SYNTHETIC_SOURCES]
    names = synthetic or sources
    which = f"source = '{names[0]}'" if len(names) == 1 else "source IN ({})".format(", ".join(f"'{s}'" for s in names))
    problems = f"{which} AND split = 'train'"
    if synthetic:
        how = (f"`curate generate --problems \"{problems}\" --backend synthetic --n 4 --option wrong_share=0.5` "
               "(the synthetic writer ends that share of its traces on a wrong answer)")
    else:
        how = f"sample a real model several times per question: `curate generate --problems \"{problems}\" --backend vllm --model MODEL --n 4`"
    return f"get some, then label them: {how}, then `curate verify`"


def shortage_cause(store: Any, recipe: Recipe, filters: str, need_incorrect: bool) -> Optional[ConfigError]:
    """The actual cause when a mixture comes up short, if it is one of these, else None: a source predicate
    that matches no trace (no filter to relax would help), or a recipe that needs verified-incorrect traces
    where its sources have none (no `require_incorrect` would help)."""
    counts = [(i, s, selection.source_counts(store, s.where, filters)) for i, s in enumerate(recipe.sources)]
    for i, s, c in counts:
        if c["train"]:
            continue
        what = "matched no traces" if not c["traces"] else f"matched {c['traces']} traces, none of a train-split problem"
        held = ", ".join(f"source '{r['source']}' model '{r['model']}' ({r['traces']})" for r in selection.train_inventory(store))
        return ConfigError(
            f"source {s.name}: the predicate {what}: {s.where}",
            hint=("add traces it matches (`curate generate`, `curate import`), or point it at stored ones, e.g. "
                  f"--set sources.{i}.where=\"source = '...'\"" + (f"; the store's train traces: {held}" if held else
                                                                     "; the store holds no train-split traces yet")))
    if need_incorrect and not recipe.quality.reference_solution and not any(c["incorrect_kept"] for _, _, c in counts):
        names = ("sources " if len(counts) > 1 else "source ") + ", ".join(s.name for _, s, _ in counts)
        if not any(c["incorrect"] for _, _, c in counts):
            return ConfigError(f"no incorrect traces exist for {names}: the recipe needs verified-incorrect traces "
                               "(quality.incorrect_fraction > 0 or selection.require_incorrect)",
                               hint=_no_incorrect_hint(sorted({x for _, _, c in counts for x in c["sources"]})))
        total = sum(c["incorrect"] for _, _, c in counts)
        return ConfigError(f"none of the {total} incorrect traces of {names} passes the recipe's filters",
                           hint="relax `filters` (e.g. max_tokens, no_truncation, has_answer, think_closed)")
    return None


def quality_shortfall(recipe: Recipe, rows: list[dict]) -> Optional[str]:
    """Why the quality knobs of `recipe` cannot be applied to these selected rows, or None if they can."""
    q = recipe.quality
    n = len(rows)
    k_inc = int(math.floor(q.incorrect_fraction * n + 0.5))
    able = sum(1 for r in rows if r.get("neg")) if k_inc else 0
    if k_inc > able:
        return (f"incorrect_fraction {q.incorrect_fraction} needs {k_inc} of {n} rows to have a verified-incorrect "
                f"trace of the same problem, but only {able} do")
    return None


def _apply_quality(recipe: Recipe, rows: list[dict], mix: Mixture) -> None:
    q = recipe.quality
    n = len(rows)
    k_inc = int(math.floor(q.incorrect_fraction * n + 0.5))
    if k_inc:
        problem = quality_shortfall(recipe, rows)
        if problem:
            raise ConfigError(problem, hint=REQUIRE_INCORRECT_HINT)
        able = [r for r in rows if r.get("neg")]
        # Which problems flip is a hash draw, blind to lengths: preferring problems whose incorrect trace
        # matches would bias the flipped share towards short (or long) problems.
        able.sort(key=lambda r: _key(recipe.seed, "incorrect", r["problem_id"]))
        matched = 0
        for r in able[:k_inc]:
            neg = r["neg"]
            matched += neg["bucket"] == r["bucket"]
            r.update(sample_id=neg["sample_id"], response=neg["response"], tokens=neg["tokens"], tokens_est=neg["tokens_est"], status="incorrect",
                     bucket=neg["bucket"], replaced=True)
        mix.incorrect = {"requested": k_inc, "replaced": k_inc, "same_length_bucket": matched}
    k_tr = int(math.floor(q.truncate_fraction * n + 0.5))
    if k_tr:
        for r in sorted(rows, key=lambda r: _key(recipe.seed, "truncate", r["problem_id"], r["sample_id"]))[:k_tr]:
            r["response"] = transforms.truncate(r["response"], q.truncate_keep)
            r["truncated"] = True
    for r in rows:
        parts = []
        if r.get("replaced"):
            parts.append("incorrect")
        if q.reference_solution:
            parts.append(r["reference_kind"])
        if q.strip_thinking:
            parts.append("strip_thinking")
        if r.get("truncated"):
            parts.append("truncated")
        r["transform"] = "+".join(parts) or "none"


# Quality knobs applied after selection: sweep points differing only in these share one selection.
AFTER_SELECTION = ("incorrect_fraction", "truncate_fraction", "truncate_keep")


def selection_key(recipe: Recipe) -> str:
    """Equal for recipes whose selected rows are equal (they differ at most in AFTER_SELECTION knobs)."""
    data = recipe.model_dump(mode="json")
    data.pop("name")
    for k in AFTER_SELECTION:
        data["quality"].pop(k)
    return canonical_json(data)


def build(store: Any, recipe: Recipe, progress: Optional[Callable[[str], None]] = None) -> Mixture:
    """Select and transform the rows of `recipe` from `store` (no files written)."""
    return finish(store, select(store, recipe, progress=progress), recipe)


def finish(store: Any, selected: Mixture, recipe: Recipe) -> Mixture:
    """Apply `recipe`'s quality knobs to a copy of selected rows (the selection itself is left as it was)."""
    mix = dataclasses.replace(selected, recipe=recipe, rows=[dict(r) for r in selected.rows], dropped=Counter(selected.dropped))
    _apply_quality(recipe, mix.rows, mix)
    mix.rows.sort(key=lambda r: (r["pk"], r["k"]))
    mix.verifiers = selection.verifier_versions(store, [r["sample_id"] for r in mix.rows if r["sample_id"]])
    return mix


def select(store: Any, recipe: Recipe, want_incorrect: bool = False,
           progress: Optional[Callable[[str], None]] = None) -> Mixture:
    """The rows `recipe` selects, before quality knobs; `want_incorrect` also matches incorrect traces
    (a sweep whose other points need them)."""
    say = progress or (lambda msg: None)
    f = recipe.filters
    predicates = [(f"sources.{s.name}.where", s.where, "traces") for s in recipe.sources]
    if f.where:
        predicates.append(("filters.where", f.where, "traces"))
    if recipe.selection.same_questions_as:
        predicates.append(("selection.same_questions_as", recipe.selection.same_questions_as, "traces"))
    if recipe.decontaminate.eval_where:
        predicates.append(("decontaminate.eval_where", recipe.decontaminate.eval_where, "problems"))
    if selection.preflight(store, predicates) == 0 and recipe.selection.per_problem != "any":
        raise StoreError("the store has no verdicts, so no trace is known to be correct",
                         hint="label the traces first (`curate verify`), or use selection.per_problem: any")
    filters = selection.filter_sql(max_tokens=f.max_tokens, no_truncation=f.no_truncation, has_answer=f.has_answer,
                                   think_closed=f.think_closed, max_repetition=f.max_repetition,
                                   strip_thinking=recipe.quality.strip_thinking and not recipe.quality.reference_solution,
                                   where=f.where)
    requested = allocate(recipe)
    mix = Mixture(recipe=recipe, rows=[], requested=requested)
    want_incorrect = want_incorrect or recipe.quality.incorrect_fraction > 0 or recipe.selection.require_incorrect
    say("selecting candidates")
    tables = [selection.per_problem_choices(
        store, where=s.where, filters=filters, per_problem=recipe.selection.per_problem, seed=recipe.seed,
        bucket_ratio=recipe.quality.length_bucket_ratio, want_incorrect=want_incorrect,
        require_incorrect=recipe.selection.require_incorrect, want_solution=recipe.quality.reference_solution,
        match_where=recipe.selection.same_questions_as)
        for s in recipe.sources]
    if recipe.selection.same_questions_as:
        flags = {pid: m for t in tables for pid, m in zip(t.column("problem_id").to_pylist(), t.column("matched").to_pylist())}
        mix.matching = {"same_questions_as": recipe.selection.same_questions_as, "candidates": len(flags),
                        "matched": sum(map(bool, flags.values()))}
    # Every candidate prompt once, in a fixed order: what counts as template is measured on them.
    corpus = list(dict.fromkeys(p for t in tables for p in t.column("prompt").to_pylist()))
    index = None
    dec = recipe.decontaminate
    if dec.enabled:
        evals = [(b, p, problem_key(b, json.loads(r) if r is not None else None))
                 for b, p, r in selection.eval_prompts(store, dec.eval_where)]
        index = EvalIndex(evals, n=dec.n, common_share=dec.common_share, corpus=corpus)
        mix.eval_problems = len(index)
        mix.eval_index = {"keyed": index.keyed, "template_grams": index.template_grams}
    d = recipe.dedup
    deduper = PromptDeduper(exact=d.exact, near=d.near, threshold=d.near_threshold, shingle=d.shingle,
                            corpus=corpus, common_share=d.common_share)
    taker = _Taker(store, recipe, deduper, index, mix, say)
    taken: set[str] = set()
    short = []
    for s, table in zip(recipe.sources, tables):
        got = taker.take(s.name, table, requested[s.name], taken)
        if len(got) < requested[s.name]:
            short.append(f"source {s.name}: {len(got)} eligible rows of {requested[s.name]} requested")
        mix.rows.extend(got)
    no_neg = want_incorrect and not recipe.quality.reference_solution and not any(r.get("neg") for r in mix.rows)
    if (short and not recipe.allow_smaller) or not mix.rows or no_neg:
        cause = shortage_cause(store, recipe, filters, want_incorrect)
        if cause is not None:
            raise cause
    missing = mix.dropped.get("no reference solution", 0)
    if recipe.quality.reference_solution and missing and (short and not recipe.allow_smaller or not mix.rows):
        raise ConfigError(
            f"{missing} selected problems have no reference solution"
            + (f" ({'; '.join(short)})" if short else ""),
            hint="import the human short solutions for these questions, e.g. NuminaMath-1.5: "
                 "`curate import numina.jsonl --preset numinamath` (matched by prompt) or `curate tasks add numinamath`; "
                 "or answer them with the gold answer: quality.reference_fallback: boxed_answer")
    if short and not recipe.allow_smaller:
        drops = ", ".join(f"{k}: {v}" for k, v in sorted(mix.dropped.items()))
        raise ConfigError("not enough eligible rows: " + "; ".join(short) + (f" (dropped on the way: {drops})" if drops else ""),
                          hint="relax the filters or sources, lower `size`, or set `allow_smaller: true`")
    if not mix.rows:
        raise ConfigError("the recipe selects no rows at all", hint="check the sources' predicates with `curate sql`")
    mix.contamination = {b: dict(sorted(c.items())) for b, c in sorted(taker.contam.items())}
    mix.snapshot = store.snapshot()
    return mix


def to_records(mix: Mixture) -> list[dict]:
    """The dataset rows: `messages` plus provenance columns, in the mixture's fixed order."""
    o = mix.recipe.output
    out = []
    for r in mix.rows:
        out.append({
            "messages": transforms.messages(r["prompt"], r["response"], o.prompt_template, o.system_prompt),
            "problem_id": r["problem_id"],
            "sample_id": r["sample_id"],
            "source": r["source"],
            "recipe_source": r["source_name"],
            "domain": r["domain"],
            "status": r["status"],
            "transform": r["transform"],
            "completion_tokens": r["tokens"] if r["transform"] in ("none", "incorrect") else None,
            # chars/4 when the store had no count for the trace (e.g. a pool imported without token counts)
            "completion_tokens_estimated": bool(r.get("tokens_est")) if r["transform"] in ("none", "incorrect") else None,
            "response_chars": len(r["response"]),
        })
    return out

