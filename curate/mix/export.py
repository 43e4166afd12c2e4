"""Write a mixture: Hugging Face `save_to_disk` folder, Parquet, dataset card (README.md), manifest.

Layout of OUT:
    README.md                          the card: recipe + hash, store snapshot, verifier versions,
                                       composition, token statistics, contamination, drops
    manifest.json                      the same facts as JSON, plus the sha256 of every data file
    data/train-00000-of-00001.parquet  `load_dataset("parquet", data_files=...)` or `load_dataset(OUT)`
    dataset/                           `datasets.load_from_disk(OUT / "dataset")`
Nothing written depends on time, paths or process ids (fingerprints are derived from the content), so
the same recipe on the same store gives byte-identical files. The folder is assembled beside OUT and
renamed into place, so a failure never leaves half a dataset behind.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import InputError
from curate.mix.build import Mixture, to_records

SCHEMA = pa.schema([
    ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
    ("problem_id", pa.string()),
    ("sample_id", pa.string()),
    ("source", pa.string()),
    ("recipe_source", pa.string()),
    ("domain", pa.string()),
    ("status", pa.string()),
    ("transform", pa.string()),
    ("completion_tokens", pa.int64()),
    ("completion_tokens_estimated", pa.bool_()),
    ("response_chars", pa.int64()),
])
PARQUET = "data/train-00000-of-00001.parquet"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    v = sorted(values)
    pick = lambda q: v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]  # noqa: E731 (nearest rank)
    return {"n": len(v), "min": v[0], "median": pick(0.5), "mean": round(statistics.fmean(v), 1), "p90": pick(0.9), "max": v[-1]}


def summarise(mix: Mixture, records: list[dict]) -> dict:
    """The facts the card and the manifest report."""
    comp = Counter((r["recipe_source"], r["source"], r["status"], r["transform"]) for r in records)
    by_status: dict[str, list] = {}
    for r in records:
        by_status.setdefault(r["status"], []).append(r)
    return {
        "name": mix.recipe.name,
        "recipe_hash": mix.recipe.hash(),
        "rows": len(records),
        "requested": mix.requested,
        "store": mix.snapshot,
        "verifiers": mix.verifiers,
        "composition": [
            {"recipe_source": a, "source": b, "status": c, "transform": d, "rows": n}
            for (a, b, c, d), n in sorted(comp.items())
        ],
        "tokens": {
            "completion_tokens": _stats([r["completion_tokens"] for r in records
                                         if r["completion_tokens"] is not None and not r["completion_tokens_estimated"]]),
            "completion_tokens_estimated": _stats([r["completion_tokens"] for r in records
                                                   if r["completion_tokens"] is not None and r["completion_tokens_estimated"]]),
            "response_chars": _stats([r["response_chars"] for r in records]),
            "response_chars_by_status": {s: _stats([r["response_chars"] for r in rs]) for s, rs in sorted(by_status.items())},
        },
        "incorrect": mix.incorrect,
        "matching": {**mix.matching, "rows_matched": len(records)} if mix.matching else {},
        "reference": ({"solutions": sum("reference_solution" in r["transform"] for r in records),
                       "boxed_answers": sum("reference_answer" in r["transform"] for r in records),
                       "fallback": mix.recipe.quality.reference_fallback,
                       "without_solution_dropped": mix.dropped.get("no reference solution", 0)}
                      if mix.recipe.quality.reference_solution else {}),
        "decontamination": {
            "enabled": mix.recipe.decontaminate.enabled,
            "n": mix.recipe.decontaminate.n,
            "checked": list(mix.recipe.decontaminate.check),
            "action": mix.recipe.decontaminate.action,
            "eval_problems": mix.eval_problems,
            "common_share": mix.recipe.decontaminate.common_share,
            "keyed_eval_problems": mix.eval_index.get("keyed", 0),
            "template_grams": mix.eval_index.get("template_grams", 0),
            "hits": mix.contamination,
        },
        "dropped": dict(sorted(mix.dropped.items())),
    }


def _table(rows: list[dict]) -> str:
    if not rows:
        return "_none_\n"
    cols = list(dict.fromkeys(c for r in rows for c in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join("" if r.get(c) is None else str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def card(mix: Mixture, facts: dict) -> str:
    """The dataset card (README.md). Plain Markdown with a small YAML header for the Hub viewer."""
    r = mix.recipe
    s = facts["store"]
    tok = facts["tokens"]
    contam = [{"benchmark": b, "prompt hits": c.get("prompt", 0), "trace hits": c.get("trace", 0)}
              for b, c in facts["decontamination"]["hits"].items()]
    dec = facts["decontamination"]
    parts = [
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: " + PARQUET + "\ntags:\n- curate\n- reasoning-sft\n---\n",
        f"# {r.name}\n",
        (r.description.strip() + "\n") if r.description.strip() else "",
        f"Training mixture built by `curate mix` from a trace store. {facts['rows']} rows "
        f"(requested {r.size}), conversational `messages` format.\n",
        "## Recipe\n",
        f"Recipe hash: `{facts['recipe_hash']}` (hash of the validated recipe below, defaults included).\n",
        "```yaml\n" + r.to_yaml() + "```\n",
        "## Store snapshot\n",
        f"problems {s['problems']}, samples {s['samples']}, verdicts {s['verdicts']}; snapshot id `{s['id']}`\n",
        "## Verifier versions\n",
        _table([{"verifier": v["verifier"], "version": v["version"], "samples": v["samples"]} for v in facts["verifiers"]]),
        "## Composition\n",
        _table(facts["composition"]),
    ]
    if facts["incorrect"]:
        i = facts["incorrect"]
        parts.append(f"Incorrect traces: {i['replaced']} rows replaced by a verified-incorrect trace of the same problem; "
                     f"{i['same_length_bucket']} from the same length bucket as the correct trace they replace.\n")
    if facts["matching"]:
        m = facts["matching"]
        parts.append(f"Same questions: {m['matched']} of {m['candidates']} candidate questions also have a correct trace in "
                     f"`{m['same_questions_as']}` (matched by prompt key across sources); all {m['rows_matched']} rows "
                     f"are matched questions.\n")
    if facts["reference"]:
        ref = facts["reference"]
        parts.append(f"Reference responses: {ref['solutions']} human short solutions, {ref['boxed_answers']} boxed gold "
                     f"answers standing in for a missing solution (reference_fallback: {ref['fallback']}); "
                     f"{ref['without_solution_dropped']} problems without a solution dropped.\n")
    parts += [
        "## Token statistics\n",
        _table([{"measure": k, **v} for k, v in (("completion_tokens (counted by the generator)", tok["completion_tokens"]),
                                                  ("completion_tokens (estimated: chars/4, no count stored)", tok["completion_tokens_estimated"]),
                                                  ("response_chars", tok["response_chars"]))]),
        "Response characters by status:\n",
        _table([{"status": k, **v} for k, v in tok["response_chars_by_status"].items()]),
        "## Decontamination\n",
        (f"{dec['n']}-gram overlap of {', '.join(dec['checked'])} with {dec['eval_problems']} eval-split problems; "
         f"action: {dec['action']}. {dec['template_grams']} template n-grams (in at least {dec['common_share']:.0%} of a "
         f"benchmark's or of the candidate prompts) are ignored; {dec['keyed_eval_problems']} eval problems with a "
         f"structured key (e.g. Countdown numbers and target) are matched by key, not by text.\n\n"
         + _table(contam)) if dec["enabled"] else "Disabled in this recipe.\n",
        "## Dropped while selecting\n",
        _table([{"reason": k, "problems": v} for k, v in facts["dropped"].items()]),
    ]
    return "\n".join(p for p in parts if p)


def _arrow(records: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(records, schema=SCHEMA)


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists():
        if not overwrite:
            raise InputError(f"{out} already exists", hint="pass --overwrite to replace it, or choose another --out")
        if not out.is_dir():
            raise InputError(f"{out} exists and is not a directory")
        if any(out.iterdir()) and not (out / "manifest.json").is_file():
            raise InputError(f"{out} is not a curate mixture (no manifest.json); refusing to delete it",
                             hint="remove it yourself or choose another --out")


def read_manifest(out: Path) -> dict | None:
    """The manifest of the mixture at `out`, or None when there is none (or it is unreadable)."""
    try:
        return json.loads((Path(out) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write(mix: Mixture, out: str | Path, overwrite: bool = False) -> dict:
    """Write the mixture to `out`; returns the manifest."""
    out = Path(out)
    _prepare(out, overwrite)
    manifest, tmp = stage(mix, out)
    commit(tmp, out)
    return manifest


def commit(tmp: Path, out: Path) -> None:
    """Move a staged mixture into place (replacing what is at `out`)."""
    try:
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def stage(mix: Mixture, out: Path) -> tuple[dict, Path]:
    """Write the mixture into a hidden folder beside `out`; returns (manifest, that folder) for `commit`."""
    import datasets  # imported here: heavy, and only the writer needs it

    records = to_records(mix)
    table = _arrow(records)
    facts = summarise(mix, records)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / "data").mkdir(parents=True)
        if mix.recipe.output.parquet:
            pq.write_table(table, tmp / PARQUET, compression="zstd", row_group_size=4096)
        fingerprint = hashlib.sha256((facts["recipe_hash"] + facts["store"]["id"]).encode()).hexdigest()[:16]
        ds = datasets.Dataset(table, fingerprint=fingerprint)
        prev = datasets.utils.logging.get_verbosity()
        datasets.utils.logging.set_verbosity_error()
        datasets.disable_progress_bars()
        try:
            ds.save_to_disk(str(tmp / "dataset"))
        finally:
            datasets.utils.logging.set_verbosity(prev)
        (tmp / "README.md").write_text(card(mix, facts), encoding="utf-8")
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {**facts, "recipe": mix.recipe.model_dump(mode="json"),
                    "files": {str(p.relative_to(tmp)): {"sha256": _sha256(p), "bytes": p.stat().st_size} for p in files}}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest, tmp


def manifest_line(manifest: dict) -> dict[str, Any]:
    """A one-row summary (for the CLI's table / --json)."""
    comp = Counter()
    for c in manifest["composition"]:
        comp[c["status"]] += c["rows"]
    hits = sum(sum(v.values()) for v in manifest["decontamination"]["hits"].values())
    return {"name": manifest["name"], "rows": manifest["rows"], **{f"rows_{k}": v for k, v in sorted(comp.items())},
            "contamination_hits": hits, "recipe_hash": manifest["recipe_hash"][:12],
            "status": "unchanged (skipped)" if manifest.get("skipped") else "built"}

