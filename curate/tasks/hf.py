"""Hugging Face datasets as problem sources, with column mapping and presets for the study's sets.

`hf` reads any dataset (`load_dataset` for a hub id, `load_from_disk` for a saved directory, or a local
.jsonl/.json/.parquet/.csv file) and maps columns to Problem fields. Presets fix the dataset id, split,
columns, domain, train/eval split and prompt format:

| preset | dataset | our split | prompt / reference |
|---|---|---|---|
| math500 | HuggingFaceH4/MATH-500 (test) | eval | problem / answer (subject, level, unique_id in metadata) |
| aime24 | HuggingFaceH4/aime_2024 (train) | eval | problem / answer |
| gpqa_diamond | Idavidrein/gpqa, gpqa_diamond (train) | eval | question + 4 lettered options / letter |
| mmlu_pro | TIGER-Lab/MMLU-Pro (test) | eval | question + up to 10 options / letter |
| livecodebench | livecodebench/code_generation_lite (test) | eval | question (+ starter code) / tests |
| openr1_math | open-r1/OpenR1-Math-220k (train) | train | problem / answer |
| numinamath | AI-MO/NuminaMath-1.5 (train) | train | problem / answer (solution in metadata) |
| hex_phi | LLM-Tuning-Safety/HEx-PHI style: prompt-only safety rows | eval | prompt / none |
| alpacaeval | tatsu-lab/alpaca_eval, alpaca_eval (eval); offline: its alpaca_eval.json | eval | instruction / none (dataset in metadata) |

Every preset accepts `--set path=LOCAL` (a saved dataset or data file) for offline use, which is how
the tests run. GPQA options are shuffled with a seed derived from a SHA-256 of the question, never
Python's `hash()` (docs/paper.md: the original scripts were not reproducible because of it).
LiveCodeBench's private tests come zlib+base64-compressed pickles of JSON strings; they are read with
an unpickler that refuses every global, so only plain strings/lists/dicts can come out.
Test: tests/test_tasks_sources.py.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import pickle
import random
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from curate.errors import InputError
from curate.records import DOMAINS, Problem
from curate.tasks.base import TaskSpec, register

LETTERS = "ABCDEFGHIJKLMNOP"
MC_SUFFIX = "Answer with the letter of the correct option."


@dataclass(frozen=True)
class HFDatasetConfig:
    path: str = ""  # hub id, saved-dataset directory or data file
    name: str | None = None  # the dataset's config name
    hf_split: str = "train"  # which split of the dataset to read
    revision: str | None = None
    prompt: str = "prompt"  # column with the question
    reference: str | None = "answer"  # column with the gold answer (None: no reference)
    metadata: tuple[str, ...] = ()  # columns copied into metadata
    domain: str = "math"
    source: str = ""  # problems.source (default: the preset or dataset name)
    subset: int | None = None  # a fixed random subset of this many rows (by content hash, reproducible)

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("give the dataset: --set path=HUB_ID_OR_LOCAL_PATH")
        if self.domain not in DOMAINS:
            raise ValueError(f"domain must be one of {DOMAINS}, got {self.domain!r}")
        if self.subset is not None and self.subset < 1:
            raise ValueError("subset must be >= 1")


# --------------------------------------------------------------------------- loading rows


def load_rows(cfg: HFDatasetConfig):
    """A `datasets.Dataset` for the config; errors name the path and what to do."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - a core dependency
        raise InputError("the hf source needs the datasets package", hint="pip install datasets") from None
    p = Path(cfg.path).expanduser()
    if cfg.path.startswith(("/", "./", "../", "~")) and not p.exists():
        raise InputError(f"{cfg.path}: no such file or directory")
    try:
        if p.is_file():
            fmt = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(p.suffix)
            if fmt is None:
                raise InputError(f"{p}: unsupported data file type {p.suffix!r} (use .jsonl, .json, .parquet or .csv)")
            return datasets.load_dataset(fmt, data_files=str(p), split="train")
        if p.is_dir() and ((p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists() or (p / "state.json").exists()):
            ds = datasets.load_from_disk(str(p))
            if isinstance(ds, datasets.DatasetDict):
                if cfg.hf_split not in ds:
                    raise InputError(f"{p}: no split {cfg.hf_split!r}; it has {', '.join(ds)}", hint="--set hf_split=NAME")
                ds = ds[cfg.hf_split]
            return ds
        return datasets.load_dataset(cfg.path, cfg.name, split=cfg.hf_split, revision=cfg.revision)
    except InputError:
        raise
    except Exception as e:  # datasets raises many types (hub, network, file format): one clear line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot load dataset {cfg.path!r} (split {cfg.hf_split}): {first}",
                         hint="offline? point --set path= at a saved dataset directory or a .jsonl/.parquet file") from None


def _require(columns: list[str], wanted: list[str | None], where: str, metadata: tuple[str, ...] = ()) -> None:
    missing = [c for c in wanted if c and c not in columns]
    if missing:
        needs = ", ".join(c for c in wanted if c)
        meta = (f"; metadata columns ({', '.join(metadata)}) are copied too: --set metadata=COL,... "
                f"(or --set metadata=[] for none)") if metadata else ""
        raise InputError(f"{where}: no column {', '.join(map(repr, missing))}; columns are {', '.join(columns)}",
                         hint=f"this source reads {needs}; map yours with --set prompt=COL --set reference=COL{meta}")


def _subset_order(rows: list[dict], cfg: HFDatasetConfig, key: Callable[[dict], str]) -> list[dict]:
    if cfg.subset is None:
        return rows
    ranked = sorted(rows, key=lambda r: hashlib.sha256(key(r).encode()).hexdigest())
    return ranked[: cfg.subset]


def _json_value(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


# --------------------------------------------------------------------------- formatters (row -> prompt, reference, metadata)


def plain(row: dict, cfg: HFDatasetConfig) -> tuple[str, Any, dict]:
    ref = row.get(cfg.reference) if cfg.reference else None
    return str(row[cfg.prompt]), _json_value(ref), {}


def lettered(question: str, options: list[str]) -> str:
    lines = "\n".join(f"{LETTERS[i]}) {str(o).strip()}" for i, o in enumerate(options))
    return f"{question.strip()}\n\n{lines}\n\n{MC_SUFFIX}"


def gpqa(row: dict, cfg: HFDatasetConfig) -> tuple[str, Any, dict]:
    q = str(row["Question"])
    options = [row["Correct Answer"], row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"]]
    order = list(range(4))
    random.Random(int(hashlib.sha256(q.encode()).hexdigest()[:16], 16)).shuffle(order)
    shuffled = [str(options[i]).strip() for i in order]
    letter = LETTERS[order.index(0)]
    return lettered(q, shuffled), letter, {"options": shuffled}


def mmlu_pro(row: dict, cfg: HFDatasetConfig) -> tuple[str, Any, dict]:
    options = [o for o in row["options"] if str(o).strip() and str(o).strip() != "N/A"]
    letter = row.get("answer") or LETTERS[int(row["answer_index"])]
    meta = {"options": options}
    for k in ("category", "question_id", "src"):
        if k in row:
            meta[k] = row[k]
    return lettered(str(row["question"]), options), str(letter), meta


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module, name):  # refuse every class or function: only plain data may load
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _tests(value: Any) -> list:
    """LiveCodeBench test lists: a JSON string, or base64(zlib(pickle(JSON string)))."""
    if value in (None, ""):
        return []
    if isinstance(value, list):
        return value
    text = str(value)
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        inner = _NoGlobals(io.BytesIO(zlib.decompress(base64.b64decode(text)))).load()
        return json.loads(inner) if isinstance(inner, str) else inner
    except Exception as e:
        raise InputError(f"livecodebench: unreadable test cases ({type(e).__name__})") from None


def livecodebench(row: dict, cfg: HFDatasetConfig) -> tuple[str, Any, dict]:
    q = str(row["question_content"]).strip()
    starter = str(row.get("starter_code") or "").strip()
    if starter:
        prompt = (f"{q}\n\nYou will use the following starter code to write the solution to the problem and enclose "
                  f"your code within delimiters.\n```python\n{starter}\n```")
    else:
        prompt = (f"{q}\n\nRead the inputs from stdin, solve the problem and write the answer to stdout. "
                  "Enclose your code within delimiters as follows.\n```python\n# YOUR CODE HERE\n```")
    meta_raw = row.get("metadata") or "{}"
    extra = json.loads(meta_raw) if isinstance(meta_raw, str) else dict(meta_raw)
    public, private = _tests(row.get("public_test_cases")), _tests(row.get("private_test_cases"))
    # The code verifier's shape: every test in "tests" (public first), each with its testtype.
    ref = {"tests": public + private, "n_public": len(public), "fn_name": extra.get("func_name"), "starter_code": starter}
    meta = {k: row[k] for k in ("question_id", "platform", "difficulty", "contest_date") if k in row}
    return prompt, _json_value(ref), _json_value(meta)


def hexphi(row: dict, cfg: HFDatasetConfig) -> tuple[str, Any, dict]:
    meta = {}
    if "category" in row:
        meta["category"] = row["category"]
    return str(row[cfg.prompt]), None, meta


# --------------------------------------------------------------------------- the loader


def make_loader(formatter: Callable, required: list[str] | None = None, verifier: str | None = None,
                keep_all: bool = False):
    def load(cfg: HFDatasetConfig, size: int | None, seed: int, split: str) -> Iterator[Problem]:
        ds = load_rows(cfg)
        cols = list(ds.column_names)
        need = list(required) if required is not None else [cfg.prompt, cfg.reference]
        _require(cols, need + list(cfg.metadata), cfg.path, tuple(cfg.metadata))
        if not keep_all:  # drop unused columns (e.g. OpenR1's long generations) before reading rows
            wanted = {c for c in need + [cfg.prompt, cfg.reference, "category", "answer_index", "answer"] + list(cfg.metadata) if c}
            ds = ds.select_columns([c for c in cols if c in wanted])
        rows = _subset_order(list(ds), cfg, lambda r: json.dumps(r, sort_keys=True, default=str)) if cfg.subset else ds
        source = cfg.source or Path(cfg.path).stem or cfg.path
        for i, row in enumerate(rows):
            if size is not None and i >= size:
                return
            prompt, ref, meta = formatter(row, cfg)
            if not prompt.strip():
                raise InputError(f"{cfg.path}: row {i} has an empty prompt (column {cfg.prompt!r})")
            meta = {**meta, **{c: _json_value(row[c]) for c in cfg.metadata}, "row": i}
            yield Problem(source=source, domain=cfg.domain, prompt=prompt, reference=ref, metadata=meta, split=split)

    return load


def _preset(task: str, description: str, formatter: Callable, split: str, verifier: str,
            required: list[str] | None = None, keep_all: bool = False, **defaults) -> None:
    fields = [(f.name, f.type, dataclasses.field(default=defaults.get(f.name, f.default)))
              for f in dataclasses.fields(HFDatasetConfig)]
    cls = dataclasses.make_dataclass(f"{task.title().replace('-', '')}Config", fields, bases=(HFDatasetConfig,), frozen=True)
    cls.__module__ = __name__
    register(TaskSpec(name=task, description=description, domain=defaults.get("domain", "math"), config_cls=cls,
                      load=make_loader(formatter, required, verifier, keep_all), verifier=verifier, default_split=split))


_preset("math500", "MATH-500 benchmark (math-verify)", plain, "eval", "math", path="HuggingFaceH4/MATH-500", hf_split="test",
        prompt="problem", reference="answer", metadata=("subject", "level", "unique_id"), source="math500")
_preset("aime24", "AIME 2024 (math-verify)", plain, "eval", "math", path="HuggingFaceH4/aime_2024", hf_split="train",
        prompt="problem", reference="answer", source="aime24")
_preset("gpqa_diamond", "GPQA-Diamond, options shuffled reproducibly, boxed letter", gpqa, "eval", "multiple_choice",
        required=["Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"],
        path="Idavidrein/gpqa", name="gpqa_diamond", hf_split="train", domain="science", source="gpqa_diamond")
_preset("mmlu_pro", "MMLU-Pro (use --set subset=1000 for the study's 1k subset), boxed letter", mmlu_pro, "eval", "multiple_choice",
        required=["question", "options"], path="TIGER-Lab/MMLU-Pro", hf_split="test", domain="science", source="mmlu_pro")
_preset("livecodebench", "LiveCodeBench code generation (stdin or function tests)", livecodebench, "eval", "code",
        required=["question_content"], keep_all=True, path="livecodebench/code_generation_lite", name="release_v2", hf_split="test",
        domain="code", source="livecodebench")
_preset("openr1_math", "OpenR1-Math-220k questions (the Math-CoT pool)", plain, "train", "math", path="open-r1/OpenR1-Math-220k",
        name="default", hf_split="train", prompt="problem", reference="answer", metadata=("uuid",), source="openr1_math")
_preset("numinamath", "NuminaMath-1.5 (human short solution kept in metadata.solution)", plain, "train", "math",
        path="AI-MO/NuminaMath-1.5", hf_split="train", prompt="problem", reference="answer",
        metadata=("solution", "problem_type", "source"), source="numinamath")
_preset("hex_phi", "HEx-PHI-style prompt-only safety set (prompt column, optional category)", hexphi, "eval", "safety",
        path="LLM-Tuning-Safety/HEx-PHI", prompt="prompt", reference=None, domain="safety", source="hex_phi")
_preset("alpacaeval", "AlpacaEval instructions (scored by a reward model: verifier reward_model)", plain, "eval",
        "reward_model", path="tatsu-lab/alpaca_eval", name="alpaca_eval", hf_split="eval", prompt="instruction",
        reference=None, metadata=("dataset",), domain="general", source="alpacaeval")
register(TaskSpec(name="hf", description="Any Hugging Face dataset or data file with column mapping (--set path=, prompt=, reference=)",
                  domain="math", config_cls=HFDatasetConfig, load=make_loader(plain)))
