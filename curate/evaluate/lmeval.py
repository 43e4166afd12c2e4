"""lm-evaluation-harness tasks (IFEval, TruthfulQA, HaluEval, or a task folder of your own) on the same
checkpoints, with results in the same `evals` table. curate does not reimplement the harness's tasks; it
ships one the harness lacks (HaluEval QA, suites/lm_eval/).

Each (checkpoint, task) becomes one row per metric the harness reports: suite `lm-eval`, benchmark = task
name, metric = the harness's metric name (with its filter when not `none`), provenance `lm-eval`. Scaling goes
by metric, never by value: shares (accuracies, exact match, F1, TruthfulQA's mc1/mc2 and *_acc) are stored in
percent like every other score, with a 95% interval from the harness's standard error; everything else (mcc,
perplexities, BLEU/ROUGE max and diff, which the harness already reports on their own scales) is stored as
reported, so one metric's curve never mixes scales. `details.scale` records the factor (100 or 1). A task
already stored for a checkpoint with the same settings is skipped, so reruns resume. A suite's `lm_eval`
entries (`run_suite_tasks`) run the same way, under the entry's name, optionally on a local data file.
Needs `pip install 'curate[dev]'` or `pip install lm-eval`. Test: tests/test_evaluate_lmeval.py.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

from curate.errors import BackendError, InputError, first_line
from curate.evaluate.targets import Target
from curate.records import content_hash
from curate.store.evals import LINEAGE_COLUMNS, stored_keys, write_evals

# Harness tasks curate ships (the harness has no such task): HaluEval QA. Always on the task search path.
SHIPPED_TASKS = Path(__file__).parent / "suites" / "lm_eval"


def task_manager(include_path: Path | None = None):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=[str(p) for p in (include_path, SHIPPED_TASKS) if p is not None])


# Metrics the harness reports as a share in [0, 1]: stored x100 (percent). Everything else is stored as reported.
SHARE_METRICS = frozenset({"acc", "acc_norm", "acc_mutual_info", "exact_match", "em", "f1", "mc1", "mc2",
                           "prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc",
                           "inst_level_loose_acc", "contains", "pass@1"})


def metric_scale(name: str) -> float:
    """100 for a metric the harness reports as a share (by name: the list above, `*_acc`, `acc*`), else 1."""
    return 100.0 if name in SHARE_METRICS or name.endswith("_acc") or name.startswith("acc") else 1.0


def _settings(tasks_key: str, include_path: Path | None, overrides: dict, version: str) -> str:
    return content_hash("lm-eval", tasks_key, str(include_path) if include_path else None, overrides, version)[:16]


def rows_from_results(results: dict, target: Target, settings: str) -> list[dict]:
    """Turn `simple_evaluate`'s result dict into eval rows (pure, tested on a hand-written result)."""
    out = []
    versions = results.get("versions", {})
    n_samples = results.get("n-samples", {})
    for task, metrics in (results.get("results") or {}).items():
        for key, value in metrics.items():
            # metrics are keyed "name,filter"; other keys (alias, sample_len) are bookkeeping
            if "," not in key or "_stderr" in key or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            name, _, filt = key.partition(",")
            metric = name if filt in ("", "none") else f"{name}[{filt}]"
            scale = metric_scale(name)
            se = metrics.get(f"{name}_stderr,{filt}" if filt else f"{name}_stderr")
            lo = hi = None
            if isinstance(se, (int, float)) and not isinstance(se, bool) and math.isfinite(se):
                lo, hi = (value - 1.96 * se) * scale, (value + 1.96 * se) * scale
                if scale == 100.0:
                    lo, hi = max(lo, 0.0), min(hi, 100.0)
            n = (n_samples.get(task) or {}).get("effective")
            out.append({
                "run": target.run, "checkpoint": target.checkpoint, "step": target.step, "suite": "lm-eval",
                "benchmark": task, "metric": metric, "kind": "score", "value": float(value) * scale, "ci_low": lo,
                "ci_high": hi, "n_problems": n, "n_samples": n, "complete": True, "settings_hash": settings,
                "model": target.identity, "provenance": "lm-eval",
                "details": {"task_version": versions.get(task), "raw_value": value, "scale": scale},
                **{k: target.lineage.get(k) for k in LINEAGE_COLUMNS},
            })
    return out


def local_task_dir(entry, out: Path) -> tuple[Path, str]:
    """A task folder for a suite entry with local `data`: one YAML that includes the harness's own task file
    (so its prompts, answer extraction and metrics are the harness's) and swaps only the dataset for the local
    file, as the one split the task evaluates. Returns (folder, task name)."""
    import yaml

    index = task_manager().task_index
    found = index.get(entry.task)
    if found is None or not getattr(found, "yaml_path", None):
        raise InputError(f"lm_eval entry {entry.name}: the harness has no task {entry.task!r}",
                         hint="`lm-eval ls tasks` lists them")
    data = Path(entry.data).expanduser()
    if not data.is_file():
        raise InputError(f"lm_eval entry {entry.name}: data {data}: no such file")
    builder = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}[data.suffix.lower()]
    name = f"curate_{entry.name}"
    cfg = {"include": str(Path(found.yaml_path).resolve()), "task": name, "tag": [], "dataset_path": builder,
           "dataset_name": None, "dataset_kwargs": {"data_files": {"test": str(data.resolve())}},
           "training_split": None, "validation_split": None, "test_split": "test", "fewshot_split": None}
    generation = (getattr(found, "cfg", None) or {}).get("generation_kwargs")
    if entry.max_tokens is not None and isinstance(generation, dict):
        cfg["generation_kwargs"] = {**generation, "max_gen_toks": entry.max_tokens}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return out, name


def run_suite_tasks(store, target: Target, entries: list, device: str = "cpu") -> list[dict]:
    """A suite's `lm_eval` entries on one target: each through the harness (with its local data, when given),
    stored under the entry's name; rows written. An entry already stored with the same settings is skipped."""
    import tempfile

    rows: list[dict] = []
    for entry in entries:
        data = Path(entry.data).expanduser() if entry.data else None
        digest = hashlib.sha256(data.read_bytes()).hexdigest() if data is not None and data.is_file() else None
        with tempfile.TemporaryDirectory(prefix="curate-lm-eval-") as tmp:
            include, task = local_task_dir(entry, Path(tmp)) if entry.data else (None, entry.task)
            rows += run_lm_eval(store, target, [task], include_path=include,
                                overrides={"limit": entry.limit} if entry.limit else {}, device=device,
                                benchmark=entry.name, settings_extra=[entry.model_dump(mode="json"), digest])
    return rows


def run_lm_eval(store, target: Target, tasks: list[str], include_path: Path | None = None, overrides: dict | None = None,
                device: str = "cpu", benchmark: str | None = None, settings_extra=None) -> list[dict]:
    """Run the harness on one target for the tasks not yet stored; returns the rows written. `benchmark` stores
    a (single) task under another name; `settings_extra` enters the settings hash in place of the include path."""
    try:
        import lm_eval
    except ImportError:
        raise InputError("--lm-eval needs lm-evaluation-harness", hint="pip install lm-eval (or 'curate[dev]')") from None
    if target.endpoint:
        raise InputError("--lm-eval runs on model weights; an endpoint target is not supported",
                         hint="point lm-eval's own local-completions model at the server instead")
    if include_path is not None and not Path(include_path).is_dir():
        raise InputError(f"--lm-eval-include {include_path}: no such folder")
    overrides = overrides or {}
    version = getattr(lm_eval, "__version__", "?")
    rows: list[dict] = []
    for task in tasks:
        name = benchmark or task
        settings = _settings(task, include_path, overrides, version) if settings_extra is None else \
            content_hash("lm-eval", name, settings_extra, overrides, version)[:16]
        if (target.run, target.checkpoint, target.step) in stored_keys(store, "lm-eval", name, settings):
            continue
        manager = task_manager(include_path)
        if not manager.match_tasks([task]):
            raise InputError(f"--lm-eval: unknown task {task!r}",
                             hint="`lm-eval ls tasks` lists them; pass --lm-eval-include DIR for your own task YAMLs")
        limit = overrides.get("limit")
        try:
            res = lm_eval.simple_evaluate(
                model="hf", model_args={"pretrained": target.model_ref, "device": device, "dtype": "float32" if device == "cpu" else "auto",
                                        **({"revision": target.revision} if target.revision else {})},
                tasks=[task], task_manager=manager, limit=int(limit) if limit else None, log_samples=False,
                verbosity="ERROR")
        except ImportError as e:  # a task's own dependency (IFEval: langdetect, nltk), imported as the task loads
            raise InputError(f"lm-eval task {name} needs the package {e.name or e}",
                             hint=f"pip install {e.name}  (or lm-eval's extra for the task, e.g. 'lm-eval[ifeval]')") from None
        except LookupError as e:  # nltk data a task reads (IFEval's sentence counting: punkt_tab); never downloaded here
            what = next((w for w in str(e).split() if w.startswith("'tokenizers/") or w.startswith("'corpora/")), "")
            raise InputError(f"lm-eval task {name} needs nltk data {what.strip(chr(39)).rstrip('/') or first_line(e)}",
                             hint="python -m nltk.downloader punkt_tab  (while online), or set NLTK_DATA to a folder "
                                  "that holds tokenizers/punkt_tab") from None
        except (OSError, ValueError) as e:
            raise BackendError(f"lm-eval on {target.checkpoint}, task {task}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        new = [{**r, "benchmark": name} for r in rows_from_results(res or {}, target, settings)]
        write_evals(store, new)
        rows += new
    return rows
