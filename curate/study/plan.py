"""The study planner: a validated study file -> cells (condition x model x seed) and a DAG of nodes.

Each node is one plain `curate ...` command line (prepare the store, build a tiny model, mix, train,
eval, report), so any node can be rerun by hand; `curate study show FILE` prints them. Conditions
that resolve to the same recipe (same hash) share one mixture node. Nothing here touches the disk
except reading the study, its recipes and its training config.
Test: tests/test_study.py.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from curate.errors import ConfigError
from curate.study.spec import PREPARE_COMMANDS, TINY, StudySpec, field_error, load_study, resolve_study_path

KINDS = ("prepare", "model", "mix", "train", "eval", "report")


@dataclass
class Node:
    """One step of a study: its kind and structured fields; the command line is derived from them (`argv`)."""

    id: str  # kind/name, e.g. mix/verified, train/verified-tiny
    kind: str
    fields: dict  # what the command needs, by name (see _ARGV for each kind)
    deps: list[str] = field(default_factory=list)
    gpu: bool = False
    cell: Optional[str] = None
    inputs: dict = field(default_factory=dict)  # content the command depends on beyond its arguments
    extra: list[str] = field(default_factory=list)  # arguments added at launch (e.g. --resume)

    @property
    def argv(self) -> list[str]:
        """The curate command line, starting with "curate"."""
        return ["curate", *_ARGV[self.kind](self.fields), *self.extra]

    def command(self) -> str:
        return shlex.join(self.argv)


def _eval_argv(f: dict) -> list[str]:
    ev = ["eval", f["run_dir"], "--suite", f["suite"], "--store", f["store"], "--run", f["run"],
          "--steps", ",".join(str(s) for s in f["steps"])]
    if f.get("base"):
        ev += ["--base", f["base"]]
    for flag, key in (("--backend", "backend"), ("--n", "n"), ("--max-tokens", "max_tokens"), ("--limit", "limit")):
        if f.get(key) is not None:
            ev += [flag, str(f[key])]
    ev += _sets(f.get("sets") or {})
    return ev + [a for k, v in (f.get("options") or {}).items() for a in ("--option", f"{k}={_fmt(v)}")]


_ARGV = {
    "prepare": lambda f: [*f["args"], "--store", f["store"]],
    "model": lambda f: ["study", "tiny-model", f["folder"], "--seed", str(f["seed"]), *(["--size", f["size"]] if f.get("size") else [])],
    "mix": lambda f: ["mix", f["recipe"], "--out", f["out"], "--store", f["store"], "--overwrite"],
    "train": lambda f: ["train", f["config"], *_sets(f["sets"])],
    "eval": _eval_argv,
    "report": lambda f: ["report", "--store", f["store"], "--out", f["out"], "--study", f["study"]],
}


@dataclass
class Mixture:
    id: str
    recipe: Any  # curate.mix.recipe.Recipe, sweep expanded
    recipe_file: str  # where the base recipe came from
    conditions: list[str]
    dir: Path
    recipe_path: Path  # the resolved recipe the mix node reads (written by `study run`)


@dataclass
class Cell:
    id: str  # also the training run's folder name and its `run` in the evals table
    condition: str
    model: str
    seed: int
    mixture: str
    run_dir: Path
    base_model: str


@dataclass
class Plan:
    spec: StudySpec
    file: Path
    out: Path
    store: Path
    cells: list[Cell]
    mixtures: dict[str, Mixture]
    nodes: dict[str, Node]  # topological order
    train_config: Path
    total_steps: Optional[int] = None
    warnings: list[str] = field(default_factory=list)

    def cell(self, cell_id: str) -> Cell:
        for c in self.cells:
            if c.id == cell_id:
                return c
        raise ConfigError(f"no cell {cell_id!r} in study {self.spec.name}", hint="cells: " + ", ".join(c.id for c in self.cells))

    def node_ids(self, cell_id: str) -> list[str]:
        c = self.cell(cell_id)
        return [f"mix/{c.mixture}", f"train/{c.id}", f"eval/{c.id}"]


def _fmt(value: Any) -> str:
    """A `--set` value as YAML reads it back."""
    return value if isinstance(value, str) else json.dumps(value)


def _sets(pairs: dict[str, Any]) -> list[str]:
    out = []
    for k, v in pairs.items():
        out += ["--set", f"{k}={_fmt(v)}"]
    return out


def _find(base: Path, ref: str, shipped: Path) -> Optional[Path]:
    p = Path(ref).expanduser()
    if not p.is_absolute():
        p = base / p
    if p.is_file():
        return p.resolve()
    if "/" not in ref and not ref.endswith((".yaml", ".yml")):
        s = shipped / f"{ref}.yaml"
        if s.is_file():
            return s.resolve()
    return None


def _prepare_argv(line: str, error) -> list[str]:
    """A `prepare` line as curate arguments: one of PREPARE_COMMANDS, without options that would take the
    store or the command line out of the study's hands (`--store`, `--`)."""
    try:
        argv = shlex.split(line)
    except ValueError as e:
        raise error(f"cannot split this command line: {e}") from None
    if argv and argv[0] == "curate":
        argv = argv[1:]
    if not argv:
        raise error("empty command")
    command = " ".join(argv[:2]) if argv[0] == "tasks" else argv[0]
    if command not in PREPARE_COMMANDS:
        raise error(f"'{command[:40]}' cannot prepare a store; prepare runs {', '.join(PREPARE_COMMANDS)}")
    for a in argv:
        if a in ("--", "--store") or a.startswith(("--store=", "-s")):  # -s, -sPATH, -s=PATH
            raise error(f"'{a[:40]}': the study appends --store itself (set the study's `store`)")
    return argv


def _conditions(spec: StudySpec, base: Path, root: Any, origin: str) -> list[tuple[str, str, str, Any]]:
    """(condition name, name in the study file, recipe file, resolved Recipe without a sweep) for every condition and sweep point."""
    from curate.config import set_dotted
    from curate.mix.recipe import load_recipe, recipe_dir, validate_recipe

    out = []
    for i, cond in enumerate(spec.conditions):
        path = _find(base, cond.recipe, recipe_dir())
        if path is None:
            raise field_error(origin, root, ("conditions", i, "recipe"), f"no such recipe '{cond.recipe}'",
                              hint="`curate recipes list` shows the shipped recipes; paths are relative to the study file")
        recipe = load_recipe(path)
        data = recipe.model_dump(mode="json")
        for key, value in cond.overrides.items():
            try:
                set_dotted(data, key, value, where=f"{origin}: conditions.{i}.overrides", what="recipe")
            except ConfigError as e:
                raise field_error(origin, root, ("conditions", i, "overrides", key), e.message.split(": ")[-1]) from None
        data["sweep"] = {**data.get("sweep", {}), **cond.sweep}
        recipe = validate_recipe(data, origin=f"{origin}: conditions.{i} ({cond.name})")
        for suffix, point in recipe.expand_sweep():
            out.append((f"{cond.name}-{suffix}" if suffix else cond.name, cond.name, str(path), point))
    names = [n for n, _, _, _ in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{origin}: conditions: sweep points give repeated condition names: {', '.join(dup)}")
    return out


def _model_path(spec_model, base: Path, out: Path, root: Any, origin: str, i: int) -> tuple[str, Optional[str]]:
    from curate.train.layout import is_local_path

    if spec_model.path == TINY:
        return str(out / "models" / spec_model.name), None
    if is_local_path(spec_model.path):
        p = Path(spec_model.path).expanduser()
        p = p if p.is_absolute() else (base / p)
        if not (p / "config.json").is_file():
            raise field_error(origin, root, ("models", i, "path"), f"'{spec_model.path}' is not a model folder (no config.json)",
                              hint="give a local Hugging Face model folder, a hub id, or `tiny`")
        return str(p.resolve()), spec_model.tokenizer
    return spec_model.path, spec_model.tokenizer


def _suite(spec: StudySpec, base: Path, root: Any, origin: str) -> str:
    """The suite's name or absolute path, validated with the overrides the eval nodes will pass."""
    from curate.evaluate.suite import load_suite, shipped_suites

    s = spec.eval.suite
    if s not in shipped_suites():
        p = Path(s).expanduser()
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            raise field_error(origin, root, ("eval", "suite"), f"no such suite '{s}'",
                              hint=f"shipped suites: {', '.join(shipped_suites())}; or a suite YAML path relative to the study file")
        s = str(p.resolve())
    e = spec.eval
    overrides = {k: _fmt(v) for k, v in e.set.items()}
    for key, value in (("n", e.n), ("sampling.max_tokens", e.max_tokens), ("limit", e.limit)):
        if value is not None:
            overrides[key] = str(value)
    try:
        load_suite(s, overrides)
    except ConfigError as err:
        raise ConfigError(f"{origin}: eval: {err.message}", hint=err.hint) from None
    return s


def build_plan(study: str | Path, out: Optional[str | Path] = None) -> Plan:
    """Validate the study file and everything it names; return its cells and node DAG."""
    from curate.mix.recipe import validate_recipe
    from curate.records import content_hash
    from curate.train.config import CONFIG_DIR, load_config, shipped_configs

    path = resolve_study_path(study)
    spec, root = load_study(path)
    origin, base = str(path), path.resolve().parent
    out_dir = Path(out or spec.output).expanduser().resolve()
    store = Path(spec.store).expanduser().resolve() if spec.store else out_dir / "store"
    plan_warnings: list[str] = []

    conds = _conditions(spec, base, root, origin)
    mixtures: dict[str, Mixture] = {}
    by_hash: dict[str, str] = {}
    cond_mix: dict[str, str] = {}
    for name, _, rfile, recipe in conds:
        # equal recipes (names aside) share one mixture, which is named after its first condition
        h = recipe.model_copy(update={"name": "-"}).hash()
        if h not in by_hash:
            by_hash[h] = name
            named = validate_recipe({**recipe.model_dump(mode="json"), "name": name}, origin=f"{origin}: condition {name}")
            mixtures[name] = Mixture(name, named, rfile, [], out_dir / "mixtures" / name, out_dir / "recipes" / f"{name}.yaml")
        mixtures[by_hash[h]].conditions.append(name)
        cond_mix[name] = by_hash[h]
    for m in mixtures.values():
        if len(m.conditions) > 1:
            plan_warnings.append(f"conditions {', '.join(m.conditions)} resolve to the same recipe: "
                                 f"they share mixture {m.id}")

    config = _find(base, spec.train.config, CONFIG_DIR)
    if config is None:
        raise field_error(origin, root, ("train", "config"), f"no such training config '{spec.train.config}'",
                          hint=f"shipped configs: {', '.join(shipped_configs())}")
    suite = _suite(spec, base, root, origin)

    nodes: dict[str, Node] = {}
    prev: list[str] = []
    for i, line in enumerate(spec.prepare):
        argv = _prepare_argv(line, lambda msg: field_error(origin, root, ("prepare", i), msg))
        nid = f"prepare/{i + 1}-{argv[0]}"
        nodes[nid] = Node(nid, "prepare", {"args": argv, "store": str(store)}, deps=list(prev))
        prev = [nid]
    prepare_ids = list(prev)

    model_paths: dict[str, tuple[str, Optional[str]]] = {}
    for i, m in enumerate(spec.models):
        model_paths[m.name] = _model_path(m, base, out_dir, root, origin, i)
        if m.path == TINY:
            nid = f"model/{m.name}"
            nodes[nid] = Node(nid, "model", {"folder": model_paths[m.name][0], "seed": 0, "size": m.size})

    for m in mixtures.values():
        nid = f"mix/{m.id}"
        nodes[nid] = Node(nid, "mix", {"recipe": str(m.recipe_path), "out": str(m.dir), "store": str(store)},
                          deps=list(prepare_ids), inputs={"recipe_hash": m.recipe.hash()})

    steps = spec.eval.steps
    config_text = config.read_text(encoding="utf-8")
    cells: list[Cell] = []
    total_steps = None
    for cname, base_name, _, _ in conds:
        for mi, m in enumerate(spec.models):
            for seed in spec.seeds:
                cid = f"{cname}-{m.name}" + (f"-s{seed}" if len(spec.seeds) > 1 else "")
                run_dir = out_dir / "runs" / cid
                mpath, tok = model_paths[m.name]
                sets = {"data.path": str(mixtures[cond_mix[cname]].dir / "dataset"), "output_dir": str(run_dir),
                        "model.name_or_path": mpath, "train.seed": seed, "checkpoint.steps": steps}
                sets["model.tokenizer"] = tok or mpath
                sets.update(spec.train.set)
                sets.update(m.set)
                sets.update(spec.train.per_condition.get(base_name, {}))
                try:
                    cfg = load_config(config, [f"{k}={_fmt(v)}" for k, v in sets.items()])
                except ConfigError as e:
                    raise ConfigError(f"{origin}: train (cell {cid}): {e.message}", hint=e.hint) from None
                if total_steps is None:
                    total_steps = cfg.train.max_steps
                deps = [f"mix/{cond_mix[cname]}"] + ([f"model/{m.name}"] if m.path == TINY else [])
                tid, eid = f"train/{cid}", f"eval/{cid}"
                nodes[tid] = Node(tid, "train", {"config": str(config), "sets": sets}, deps=deps, gpu=True, cell=cid,
                                  inputs={"config": content_hash("train-config", config_text)})
                ev = {"run_dir": str(run_dir), "suite": suite, "store": str(store), "run": cid, "steps": list(steps),
                      "base": mpath if spec.eval.base else None, "backend": spec.eval.backend, "n": spec.eval.n,
                      "max_tokens": spec.eval.max_tokens, "limit": spec.eval.limit, "sets": dict(spec.eval.set),
                      "options": dict(spec.eval.options)}
                nodes[eid] = Node(eid, "eval", ev, deps=[tid] + ([f"model/{m.name}"] if m.path == TINY else []),
                                  gpu=True, cell=cid)
                cells.append(Cell(cid, cname, m.name, seed, cond_mix[cname], run_dir, mpath))
                if cfg.train.max_steps and max(steps) > cfg.train.max_steps:
                    w = f"eval steps above train.max_steps={cfg.train.max_steps} have no checkpoint: " \
                        f"{', '.join(str(s) for s in steps if s > cfg.train.max_steps)}"
                    if w not in plan_warnings:
                        plan_warnings.append(w)
    if spec.report:
        nodes["report"] = Node("report", "report", {"store": str(store), "out": str(out_dir / "report"), "study": str(out_dir)},
                               deps=[n for n in nodes if n.startswith("eval/")])
    return Plan(spec, path.resolve(), out_dir, store, cells, mixtures, _topological(nodes), config, total_steps, plan_warnings)


def _topological(nodes: dict[str, Node]) -> dict[str, Node]:
    """Stage order: prepare, model, mix, then each cell's train and eval in grid order, report last."""
    cells = list(dict.fromkeys(n.cell for n in nodes.values() if n.cell))
    first = {"prepare": 0, "model": 1, "mix": 2}

    def rank(n: Node) -> tuple:
        if n.kind in first:
            return (first[n.kind], 0, 0)
        if n.cell:
            return (3, cells.index(n.cell), KINDS.index(n.kind))
        return (4, 0, 0)

    return {n.id: n for n in sorted(nodes.values(), key=rank)}


def recipe_yaml(m: Mixture) -> str:
    head = (f"# Resolved recipe of mixture {m.id} (conditions: {', '.join(m.conditions)}), written by `curate study run`\n"
            f"# from {m.recipe_file} with the study's overrides. Hash: {m.recipe.hash()}\n")
    return head + m.recipe.to_yaml()


def estimate(plan: Plan) -> dict:
    """Work the plan implies: counts, training tokens and GPU-hours (6 * params * tokens at 40% of an
    H100's bf16 peak). Tokens per row come from a built mixture's manifest when present, else half of
    data.max_length (marked rough)."""
    from curate.train.config import load_config

    peak, mfu = 989e12, 0.4
    rows = []
    for c in plan.cells:
        node = plan.nodes[f"train/{c.id}"]
        cfg = load_config(node.fields["config"], [f"{k}={_fmt(v)}" for k, v in node.fields["sets"].items()])
        m = plan.mixtures[c.mixture]
        manifest = m.dir / "manifest.json"
        rough = True
        per_row = cfg.data.max_length / 2
        n_rows = m.recipe.size
        if manifest.is_file():
            facts = json.loads(manifest.read_text())
            tok = facts.get("tokens", {}).get("completion_tokens", {})
            if tok.get("mean"):
                per_row, rough = float(tok["mean"]) + 200, False
            n_rows = facts.get("rows", n_rows)
        steps = n_rows * cfg.train.epochs // cfg.train.global_batch_size
        if cfg.train.max_steps:
            steps = min(steps, cfg.train.max_steps) if steps else cfg.train.max_steps
        tokens = steps * cfg.train.global_batch_size * per_row
        spec_model = next(x for x in plan.spec.models if x.name == c.model)
        params = spec_model.params()
        hours = 6 * params * tokens / (peak * mfu) / 3600 if params else None
        rows.append({"cell": c.id, "steps": steps, "tokens": int(tokens), "gpu_hours": hours, "rough": rough})
    known = [r["gpu_hours"] for r in rows if r["gpu_hours"] is not None]
    evals = len(plan.cells) * (len(plan.spec.eval.steps) + (1 if plan.spec.eval.base else 0))
    return {"cells": len(plan.cells), "mixtures": len(plan.mixtures), "runs": len(plan.cells), "checkpoint_evals": evals,
            "nodes": len(plan.nodes), "train_tokens": sum(r["tokens"] for r in rows),
            "train_gpu_hours": sum(known) if known else None, "per_cell": rows,
            "unknown_params": sorted({r["cell"] for r in rows if r["gpu_hours"] is None})}
