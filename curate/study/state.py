"""What a study has done: per-node completion markers with content hashes, a journal, and each node's state.

A node is done only when its marker exists, the marker's key equals the node's key now (a hash of its
command line with the output folder abstracted, the content it reads, and the output hashes of the
nodes it depends on) and its outputs still hash to what the marker recorded. A folder that merely
exists counts for nothing. A marker whose key differs is *stale*: the study file (or an upstream
result) changed since the node ran; `study run` names stale cells and refuses to mix them in.

Layout under the study output folder:
    .study/nodes/<node>.json      completion marker {id, key, argv, inputs, output_hash, finished_at}
    .study/nodes/<node>.failed    last failure {rc, error, log}
    .study/nodes/<node>.running   {pid, started_at} while a runner works on it
    .study/journal.jsonl          start / done / failed / skipped events, one per line
    logs/<node>.log               the node's stdout and stderr
Test: tests/test_study.py.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from curate.records import canonical_json, content_hash
from curate.study.plan import Node, Plan
from curate.train.guard import pid_alive
from curate.train.layout import write_atomic

STATES = ("done", "running", "failed", "stale", "pending", "skipped")


def node_file(plan: Plan, node_id: str, suffix: str) -> Path:
    return plan.out / ".study" / "nodes" / (node_id.replace("/", "__") + suffix)


def log_file(plan: Plan, node_id: str) -> Path:
    return plan.out / "logs" / (node_id.replace("/", "__") + ".log")


def _read(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def portable_argv(plan: Plan, argv: list[str]) -> list[str]:
    """The command line with the output folder and the checkout abstracted, so moving them changes no key."""
    root = str(Path(__file__).resolve().parents[2])  # shipped recipes and configs live under it
    out = str(plan.out)
    return [a.replace(out, "$OUT").replace(root, "$CURATE") for a in argv]


def node_key(plan: Plan, node: Node, dep_hashes: dict[str, str]) -> str:
    return content_hash("study-node", node.kind, portable_argv(plan, node.argv), node.inputs,
                        {d: dep_hashes[d] for d in node.deps})


# ------------------------------------------------------------------ output hashes
def _files_hash(folder: Path, patterns: tuple[str, ...] = ("**/*",), content: bool = True) -> Optional[str]:
    if not folder.is_dir():
        return None
    h = hashlib.sha256()
    files = sorted({p for pat in patterns for p in folder.glob(pat) if p.is_file()})
    for p in files:
        h.update(str(p.relative_to(folder)).encode())
        if content:
            with p.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        else:
            h.update(str(p.stat().st_size).encode())
    return h.hexdigest()[:16] if files else None


def checkpoints(run_dir: Path) -> list[Path]:
    """Complete HF exports of a run (their lineage marker is written before the folder's atomic rename)."""
    from curate.train.layout import checkpoints as complete

    return [Path(c["path"]) for c in complete(run_dir)]


def output_hash(plan: Plan, node: Node) -> Optional[str]:
    """The content hash of what the node produced; None when its outputs are missing."""
    if node.kind == "mix":
        manifest = plan.mixtures[node.id.split("/", 1)[1]].dir / "manifest.json"
        return hashlib.sha256(manifest.read_bytes()).hexdigest()[:16] if manifest.is_file() else None
    if node.kind == "model":
        return _files_hash(Path(node.fields["folder"]))
    if node.kind == "train":
        run_dir = plan.cell(node.cell).run_dir
        cps = checkpoints(run_dir)
        if not cps or not (run_dir / "config.yaml").is_file():
            return None
        # weights are large: names and sizes of every exported file, plus the run's config and data digest
        parts = [(run_dir / "config.yaml").read_text(encoding="utf-8"),
                 (run_dir / "data_report.json").read_text(encoding="utf-8") if (run_dir / "data_report.json").is_file() else ""]
        parts += [f"{cp.name}:{_files_hash(cp, content=False)}" for cp in cps]
        return content_hash("train-output", parts)
    if node.kind == "eval":
        from curate.store import TraceStore
        from curate.store.evals import read_evals

        cell = plan.cell(node.cell)
        rows = read_evals(TraceStore(plan.store), f"run = '{cell.id}'")
        keyed = sorted(canonical_json([r["checkpoint"], r["step"], r["suite"], r["benchmark"], r["metric"],
                                       r["settings_hash"], r["value"]]) for r in rows)
        return content_hash("eval-output", keyed) if keyed else None
    if node.kind == "report":
        return _files_hash(plan.out / "report")
    return content_hash("prepare", portable_argv(plan, node.argv))


# ------------------------------------------------------------------ markers and journal
def mark_done(plan: Plan, node: Node, key: str, out_hash: str) -> None:
    _write_atomic(node_file(plan, node.id, ".json"), {"id": node.id, "key": key, "argv": portable_argv(plan, node.argv),
                                                        "inputs": node.inputs, "output_hash": out_hash,
                                                        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
    node_file(plan, node.id, ".failed").unlink(missing_ok=True)
    journal(plan, node.id, "done")


def mark_failed(plan: Plan, node: Node, rc: int, error: str) -> None:
    _write_atomic(node_file(plan, node.id, ".failed"), {"id": node.id, "rc": rc, "error": error,
                                                          "log": str(log_file(plan, node.id))})
    journal(plan, node.id, "failed", rc=rc)


def mark_running(plan: Plan, node: Node, pid: int) -> None:
    _write_atomic(node_file(plan, node.id, ".running"), {"pid": pid, "started_at": time.time()})
    journal(plan, node.id, "start")


def clear_running(plan: Plan, node: Node) -> None:
    node_file(plan, node.id, ".running").unlink(missing_ok=True)


def journal(plan: Plan, node_id: str, event: str, **extra) -> None:
    path = plan.out / ".study" / "journal.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"node": node_id, "event": event, "t": round(time.time(), 3), **extra}) + "\n")


def read_journal(out: Path) -> list[dict]:
    path = Path(out) / ".study" / "journal.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def last_failure(plan: Plan, node_id: str) -> Optional[dict]:
    return _read(node_file(plan, node_id, ".failed"))


@dataclass
class NodeState:
    id: str
    state: str  # one of STATES
    reason: str = ""
    key: Optional[str] = None  # the node's key now (None while an upstream node is not done)
    output_hash: Optional[str] = None


def _argv_diff(old: list[str], new: list[str]) -> str:
    gone = [a for a in old if a not in new]
    added = [a for a in new if a not in old]
    parts = ([f"now {' '.join(added)}"] if added else []) + ([f"was {' '.join(gone)}"] if gone else [])
    return "; ".join(parts)


def upstream(plan: Plan, node_id: str) -> set[str]:
    """The node and everything it depends on, directly or not."""
    seen: set[str] = set()
    todo = [node_id]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo += plan.nodes[n].deps
    return seen


def node_states(plan: Plan, verify_evals: bool = True, only: set[str] | None = None) -> dict[str, NodeState]:
    """Each node's state, in plan order (upstream first, so keys can use upstream output hashes); `only` limits
    the work to a set closed under dependencies (see `upstream`), as finishing one node needs no more."""
    states: dict[str, NodeState] = {}
    for node in plan.nodes.values():
        if only is not None and node.id not in only:
            continue
        marker = _read(node_file(plan, node.id, ".json"))
        running = _read(node_file(plan, node.id, ".running"))
        failed = _read(node_file(plan, node.id, ".failed"))
        deps = [states[d] for d in node.deps]
        deps_done = all(d.state == "done" for d in deps)
        key = node_key(plan, node, {d.id: d.output_hash for d in deps}) if deps_done else None
        if running and pid_alive(int(running.get("pid", -1))):
            states[node.id] = NodeState(node.id, "running", key=key)
            continue
        if marker:
            if not deps_done:
                stale_up = [d.id for d in deps if d.state == "stale"]
                if stale_up:
                    states[node.id] = NodeState(node.id, "stale", f"upstream {', '.join(stale_up)} is stale")
                else:
                    states[node.id] = NodeState(node.id, "stale", "upstream will be rebuilt: "
                                                + ", ".join(f"{d.id} {d.state}" for d in deps if d.state != "done"))
                continue
            if marker.get("key") != key:
                diff = _argv_diff(marker.get("argv", []), portable_argv(plan, node.argv))
                why = (f"command changed ({diff})" if diff else "its inputs changed" if marker.get("inputs") != node.inputs
                       else "an upstream result changed")
                states[node.id] = NodeState(node.id, "stale", why, key=key)
                continue
            if node.kind != "eval" or verify_evals:
                now = output_hash(plan, node)
                if now != marker.get("output_hash"):
                    states[node.id] = NodeState(node.id, "stale", "its outputs changed or vanished since it finished",
                                                key=key)
                    continue
            states[node.id] = NodeState(node.id, "done", key=key, output_hash=marker.get("output_hash"))
            continue
        if failed:
            states[node.id] = NodeState(node.id, "failed", failed.get("error", ""), key=key)
        else:
            states[node.id] = NodeState(node.id, "pending", key=key)
    return states


def stale_cells(plan: Plan, states: dict[str, NodeState]) -> dict[str, list[str]]:
    """cell -> the reasons its nodes are stale (mixture, training run, evaluation)."""
    out: dict[str, list[str]] = {}
    for c in plan.cells:
        for nid in plan.node_ids(c.id):
            s = states[nid]
            if s.state == "stale":
                out.setdefault(c.id, []).append(f"{nid}: {s.reason}")
    return out
