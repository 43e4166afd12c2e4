"""soak_store: the store under concurrent use and random SIGKILLs; prints runs, kills and corruptions.

One run: a store of Countdown problems; two `curate generate` loops on disjoint predicates (a new seed each
time), a `curate verify --batch-size 50` loop and a `curate sql`/`curate stats` loop run at once as real
processes, while a killer SIGKILLs a random participant's process group now and then. Afterwards the store
must pass `curate doctor`'s check, and once every started command is finished serially its problems,
samples, features, texts and verdicts must equal a clean serial run of the same commands.

    python benchmarks/soak_store.py --runs 200 --seconds 8          # target: 0 corruptions
    python benchmarks/soak_store.py --runs 5 --seconds 20 --no-kill # the concurrent scenario alone

tests/test_store_soak.py runs a bounded version (and a longer one marked slow).
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PREDICATES = {"gen-a": "id < '8'", "gen-b": "id >= '8'"}
SAMPLING = ["--temperature", "0.6", "--top-p", "0.95", "--top-k", "20", "--max-tokens", "16384"]
# Errors a participant may legitimately end with under load (the lock wait ran out); anything else is a failure.
EXPECTED_ERRORS = ("is busy",)


@dataclass
class RunResult:
    kills: int = 0
    commands: int = 0
    problems: list[str] = field(default_factory=list)  # integrity problems (doctor) and mismatches
    failures: list[str] = field(default_factory=list)  # participants that failed with an unexpected error
    seeds: dict[str, set[int]] = field(default_factory=dict)

    @property
    def corrupted(self) -> bool:
        return bool(self.problems)


def make_template(path: Path, problems: int) -> Path:
    from curate.store import TraceStore
    from curate.tasks import add_problems

    add_problems(TraceStore(path), "countdown", {}, size=problems, seed=0, split="train")
    return path


def _cli(store: Path, name: str, k: int) -> list[str]:
    if name in PREDICATES:
        return ["generate", "-p", PREDICATES[name], "--backend", "synthetic", "--seed", str(k), "--no-progress",
                "--flush-every", "60", *SAMPLING]
    if name == "verify":
        return ["verify", "--batch-size", "50", "--workers", "1"]
    return ["sql", "SELECT count(*) AS n, count(text) AS t FROM traces", "--json"] if k % 2 else ["stats", "--json"]


def soak(store: Path, seconds: float, kill: bool, rng: random.Random, lock_timeout: float = 60.0) -> RunResult:
    """Run the participants against `store` for `seconds`; SIGKILL one at random every 0.3-1.5 s if `kill`."""
    res = RunResult(seeds={n: set() for n in PREDICATES})
    live: dict[str, subprocess.Popen] = {}
    guard = threading.Lock()
    stop = threading.Event()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CURATE_LOCK_TIMEOUT": str(lock_timeout), "COLUMNS": "200"}

    def loop(name: str) -> None:
        k = 0
        while not stop.is_set():
            if name in PREDICATES:
                res.seeds[name].add(k)
            p = subprocess.Popen([sys.executable, "-m", "curate", *_cli(store, name, k), "--store", str(store)], cwd=ROOT,
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True)
            with guard:
                live[name] = p
            _, err = p.communicate()
            with guard:
                live.pop(name, None)
                res.commands += 1
            if p.returncode not in (0, -signal.SIGKILL) and not any(e in err for e in EXPECTED_ERRORS):
                res.failures.append(f"{name} (exit {p.returncode}): {err.strip().splitlines()[-1] if err.strip() else ''}")
            k += 1

    threads = [threading.Thread(target=loop, args=(n,)) for n in (*PREDICATES, "verify", "sql")]
    for t in threads:
        t.start()
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        time.sleep(rng.uniform(0.3, 1.5))
        if not kill:
            continue
        with guard:
            victims = [p for p in live.values() if p.poll() is None]
            if victims:
                v = rng.choice(victims)
                try:
                    os.killpg(v.pid, signal.SIGKILL)
                    res.kills += 1
                except ProcessLookupError:
                    pass
    stop.set()
    for t in threads:
        t.join()
    return res


def finish_serially(store: Path, seeds: dict[str, set[int]]) -> None:
    """Complete every generate command the soak started, then label everything (in this process)."""
    from curate.generate import RunConfig, SamplingParams, generate
    from curate.label import label_store
    from curate.store import TraceStore

    st = TraceStore(store)
    for name, ks in sorted(seeds.items()):
        for k in sorted(ks):
            generate(st, PREDICATES[name], "synthetic", None, sampling=SamplingParams(),
                     run_config=RunConfig(seed=k, flush_every=60), progress=False)
    label_store(st, workers=1, batch_size=50)


def fingerprint(store: Path) -> dict:
    from curate.store import TraceStore

    st = TraceStore(store)
    q = {
        "problems": "SELECT id, split FROM problems",
        "samples": "SELECT id, problem_id, sample_index, seed FROM samples",
        "features": "SELECT sample_id, text_chars FROM features",
        "texts": "SELECT id, md5(text) AS h FROM traces",
        "verdicts": "SELECT sample_id, verifier, version, status FROM verdicts",
    }
    return {k: sorted(map(tuple, (r.values() for r in st.query(v).to_pylist()))) for k, v in q.items()}


def run_once(template: Path, work: Path, seconds: float, kill: bool, rng: random.Random,
             references: dict | None = None) -> RunResult:
    from curate.store import TraceStore
    from curate.store.doctor import check

    store = work / "store"
    shutil.copytree(template, store)
    res = soak(store, seconds, kill, rng)
    try:
        rep = check(TraceStore(store))
        res.problems += [f"after the soak: {p}" for p in rep.problems]
        if rep.ok:
            finish_serially(store, res.seeds)
            rep = check(TraceStore(store))
            res.problems += [f"after finishing: {p}" for p in rep.problems]
    except Exception as e:  # a store that cannot even be read is the finding
        res.problems.append(f"store unusable: {type(e).__name__}: {e}")
    if not res.problems:
        key = tuple(sorted((n, tuple(sorted(s))) for n, s in res.seeds.items()))
        references = {} if references is None else references
        if key not in references:
            ref = work / "reference"
            shutil.copytree(template, ref)
            finish_serially(ref, res.seeds)
            references[key] = fingerprint(ref)
            shutil.rmtree(ref)
        got = fingerprint(store)
        for k, want in references[key].items():
            if got[k] != want:
                res.problems.append(f"{k}: {len(got[k])} rows differ from a clean serial run's {len(want)}")
    shutil.rmtree(store, ignore_errors=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=8.0, help="concurrent phase of each run")
    ap.add_argument("--problems", type=int, default=300)
    ap.add_argument("--no-kill", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="soak-store-"))
    refs: dict = {}
    totals = {"runs": 0, "kills": 0, "commands": 0, "corruptions": 0, "failures": 0}
    t0 = time.monotonic()
    try:
        template = make_template(base / "template", args.problems)
        for i in range(args.runs):
            try:
                r = run_once(template, base, args.seconds, not args.no_kill, rng, refs)
            except KeyboardInterrupt:  # Ctrl-C: stop and print what ran so far
                break
            totals["runs"] += 1
            totals["kills"] += r.kills
            totals["commands"] += r.commands
            totals["corruptions"] += r.corrupted
            totals["failures"] += len(r.failures)
            status = "CORRUPTED" if r.corrupted else "ok"
            print(f"run {i + 1}/{args.runs}: {status}  kills {r.kills}  commands {r.commands}", flush=True)
            for line in r.problems + [f"failure: {f}" for f in r.failures]:
                print(f"    {line}", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"runs {totals['runs']}  kills {totals['kills']}  commands {totals['commands']}  "
          f"corruptions {totals['corruptions']}  unexpected failures {totals['failures']}  "
          f"({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
