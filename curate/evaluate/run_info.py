"""What is known about each evaluated training run, for `curate report`: what a study recorded (condition, seed,
mixture), its run folder (the record's, else the checkpoint's parent), training config and loss from that
folder, the quality knob of its mixture, and its eval settings.

A name can stand for several training runs (cells of two studies): entries are keyed by (run, run id), the study
record is joined as the `lineage` view joins it, and `run_label` writes `name [run id8]` where that matters.
Test: tests/test_report.py.
"""
from __future__ import annotations

import json
from pathlib import Path

from curate.store import report_queries as rq

KNOB = ("quality", "incorrect_fraction")
KNOB_NAME = ".".join(KNOB)


def _run_dir(record: dict | None, checkpoint: str | None) -> Path | None:
    if record and record.get("run_dir"):
        return Path(record["run_dir"])
    if checkpoint:
        p = Path(checkpoint)
        if p.parent.name == "checkpoints":
            return p.parent.parent
    return None


def _read_config(run_dir: Path) -> dict | None:
    from curate.errors import CurateError
    from curate.yamlfile import load_yaml

    try:
        data, _ = load_yaml(run_dir / "config.yaml", what="training config")
    except (CurateError, OSError):
        return None
    return data if isinstance(data, dict) else None


def _read_loss(run_dir: Path) -> list[dict]:
    out = []
    try:
        lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for ln in lines:
        try:
            r = json.loads(ln)
            out.append({"step": int(r["step"]), "loss": float(r["loss"])})
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a kill
    return sorted({p["step"]: p for p in out}.values(), key=lambda p: p["step"])


def _train_fields(cfg: dict) -> dict:
    t, d = cfg.get("train") or {}, cfg.get("data") or {}
    return {"lr": t.get("lr"), "steps": t.get("max_steps") or (f"{t.get('epochs')} epochs" if t.get("epochs") else None),
            "batch": t.get("global_batch_size"), "max_length": d.get("max_length"), "seed": t.get("seed"),
            "schedule": t.get("schedule"), "warmup": t.get("warmup_ratio"),
            "model": (cfg.get("model") or {}).get("name_or_path")}


def _manifest(record: dict | None, cfg: dict | None) -> Path | None:
    if record and record.get("manifest") and Path(record["manifest"]).is_file():
        return Path(record["manifest"])
    if cfg and (cfg.get("data") or {}).get("path"):
        from curate.train.layout import find_manifest

        return find_manifest(cfg["data"]["path"])
    return None


def _knob(manifest: Path | None) -> tuple[float | None, str | None, float | None]:
    """(incorrect_fraction asked for, the recipe minus its name and that knob as a key, the share actually mixed)."""
    if manifest is None:
        return None, None, None
    try:
        m = json.loads(manifest.read_text(encoding="utf-8"))
        recipe = dict(m["recipe"])
        quality = dict(recipe.get("quality") or {})
        x = quality.pop(KNOB[1])
        recipe.pop("name", None)
        recipe["quality"] = quality
        rows = int(m["rows"])
        inc = sum(c["rows"] for c in m.get("composition", []) if c.get("status") == "incorrect")
    except (OSError, ValueError, KeyError, TypeError):
        return None, None, None
    return float(x), json.dumps(recipe, sort_keys=True), (inc / rows if rows else None)


def run_label(run: str, run_id: str | None) -> str:
    """A run name with its training run id, for where a name stands for several runs (`none`: rows without one,
    as `curate evals compare --a-id none` calls them)."""
    return f"{run} [run {(run_id or 'none')[:8]}]"


def _record(records: list[dict], run: str, run_id: str) -> dict | None:
    """What a study recorded about one training run, joined as the `lineage` view joins it: on the run id when
    both sides carry one, else on the name; an exact id first, then the newest record."""
    named = [r for r in records if r["run"] == run and (not run_id or not r["run_id"] or r["run_id"] == run_id)]
    return max(named, key=lambda r: (bool(run_id) and r["run_id"] == run_id, r["recorded_at"]), default=None)


def run_table(store, runs: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """Per (run, run id; '' without one): its group, seed, run folder (and whether it is reachable here),
    training fields, loss, knob, and a label that shows the run id where a name stands for several runs."""
    records = rq.run_records(store)
    checkpoints: dict[tuple[str, str], str] = {}
    for s in rq.eval_settings(store):
        key = (s["run"], s["run_id"] or "")
        if s["checkpoint"] and key not in checkpoints:
            checkpoints[key] = s["checkpoint"]
    ids: dict[str, int] = {}
    for run, _ in runs:
        ids[run] = ids.get(run, 0) + 1
    out = {}
    for key in runs:
        run, run_id = key
        rec = _record(records, run, run_id)
        rd = _run_dir(rec, checkpoints.get(key))
        reachable = rd is not None and (rd / "config.yaml").is_file()
        cfg = _read_config(rd) if reachable else None
        x, family, actual = _knob(_manifest(rec, cfg))
        train = _train_fields(cfg) if cfg else {}
        seed = rec["seed"] if rec and rec.get("seed") is not None else train.get("seed")
        out[key] = {
            "run": run, "run_id": run_id or None, "label": run_label(run, run_id) if ids[run] > 1 else run,
            "condition": rec["condition"] if rec else run, "model": rec["base_model"] if rec else None,
            "seed": seed, "recorded_by_study": rec["study"] if rec else None,
            "run_dir": str(rd) if rd else None,
            "run_dir_status": "reachable" if reachable else ("not reachable here" if rd else "no run folder recorded"),
            "train": train, "loss": _read_loss(rd) if reachable else [],
            "knob": x, "knob_family": family, "knob_actual": actual,
        }
    return out


def eval_settings(store, runs: dict[tuple[str, str], dict]) -> list[dict]:
    """Eval settings per benchmark, one row per distinct setting with the runs that used it (by their labels)."""
    backends: dict[tuple, set] = {}
    for s in rq.eval_sample_stats(store):
        if s["backends"]:
            backends.setdefault((s["run"], s["run_id"] or "", s["suite"], s["benchmark"], s["settings_hash"]),
                                set()).update(s["backends"].split(", "))
    groups: dict[tuple, list[str]] = {}
    for s in rq.eval_settings(store):
        run = (s["run"], s["run_id"] or "")
        if run not in runs:
            continue
        st = json.loads(s["settings"]) if s["settings"] else {}
        sampling = st.get("sampling") or {}
        be = backends.get((*run, s["suite"], s["benchmark"], s["settings_hash"]))
        key = (s["benchmark"], s["suite"], s["n_problems"], st.get("n"), sampling.get("max_tokens"),
               sampling.get("temperature"), sampling.get("top_p"),
               ", ".join(sorted(be)) if be else ("imported" if (s["provenance"] or "").startswith("imported") else None))
        groups.setdefault(key, []).append(runs[run]["label"])
    rows = []
    for (bench, suite, problems, n, max_tokens, temp, top_p, backend), rs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        rs = sorted(set(rs))
        rows.append({"benchmark": bench, "suite": suite, "runs": "all" if len(rs) == len(runs) and len(rs) > 1 else ", ".join(rs),
                     "problems": problems, "samples per problem": n, "max_tokens": max_tokens, "temperature": temp,
                     "top_p": top_p, "backend": backend or "not recorded", "run_list": rs})
    return rows
