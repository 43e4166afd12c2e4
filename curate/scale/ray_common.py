"""What the Ray executor's two pipelines share: the Ray session, the store-visibility probe, the bound on actor
rebuilds, errors as data between workers and the driver, and the stream of per-batch results
(curate.scale.ray_executor describes the executor; curate.scale.ray_label is its labeling pipeline).

A test-only fault injector: CURATE_RAY_TEST_FAULTS="kill_label_once=PATH,kill_generate_once=PATH,hide_store=1,
die_label=1,die_generate=1" (read on the driver, passed to the actors; PATH is a marker file so each kill
happens once; die_* ends the actor on every batch it gets).
Test: `python -m pytest -q tests/test_ray_executor.py`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import pickle
import uuid
from pathlib import Path
from typing import Any, Iterator

from curate.errors import BackendError, ConfigError, CurateError

FAULT_ENV = "CURATE_RAY_TEST_FAULTS"
PROBE_PREFIX = ".ray-probe-"
# Ray runs its workers at nice 15 by default; verifier and backend workers are this command's real work, so a
# local instance runs them at the priority the local executor's processes have (docs/scale.md).
LOCAL_SYSTEM_CONFIG = {"worker_niceness": 0}
REBUILDS_ENV = "CURATE_RAY_MAX_REBUILDS"
REBUILDS_PREFIX = ".ray-rebuilds-"
DEFAULT_MAX_REBUILDS = 3
LOGS_HINT = "its own error is in the worker logs on that node (by default under /tmp/ray/session_latest/logs/)"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray, which is not installed", hint="pip install 'curate[ray]'") from None
    return ray


def read_faults() -> dict[str, str]:
    raw = os.environ.get(FAULT_ENV, "")
    return dict(part.split("=", 1) for part in raw.split(",") if "=" in part)


def kill_once(marker: str | None) -> None:
    """Test-only: end this worker process abruptly, the first time only (the marker file remembers)."""
    if marker and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os._exit(1)


def die(flag: str | None) -> None:
    """Test-only: end this worker process abruptly, every time (an actor that segfaults or is OOM-killed)."""
    if flag:
        os._exit(1)


def max_rebuilds() -> int:
    """How often one actor may be rebuilt after dying before the command stops ($CURATE_RAY_MAX_REBUILDS)."""
    raw = os.environ.get(REBUILDS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_REBUILDS
    if not raw.isdigit():
        raise ConfigError(f"{REBUILDS_ENV} must be a whole number >= 0, got {raw!r}")
    return int(raw)


def rebuilt_too_often(visible: tuple, limit: int, stage: str) -> tuple | None:
    """None unless Ray has rebuilt this actor more than `limit` times in this command; then the error that
    stops the command, as data.

    Ray Data rebuilds a dead map actor without limit (and takes a bound only through deprecated arguments), so
    each rebuilt actor counts itself here. The count must outlive the actor, so it is a file in the store
    directory, named by the command's probe token and the actor id (which a rebuilt actor keeps). Where the
    file cannot be written, the actor is not bounded, as before."""
    import ray

    ctx = ray.get_runtime_context()
    if not ctx.was_current_actor_reconstructed:
        return None
    store_dir, _, token = visible
    path = Path(store_dir) / f"{REBUILDS_PREFIX}{token}-{ctx.get_actor_id()}"
    try:
        n = int(path.read_text()) + 1 if path.exists() else 1
        path.write_text(str(n))
    except (OSError, ValueError):
        return None
    if n <= limit:
        return None
    host = node_ip()
    return ("CurateError", f"a Ray {stage} worker on {host} died {n} times and was rebuilt after each, "
            f"more than the {limit} rebuilds allowed ({REBUILDS_ENV})",
            f"{LOGS_HINT}; what is stored is kept: fix the cause and rerun the same command to resume")


@contextlib.contextmanager
def session(address: str | None = None) -> Iterator[Any]:
    """Ray for the duration of a command. A session already started in this process is reused and left running.

    `address`: None uses RAY_ADDRESS when it is set and otherwise starts a local instance on this machine's
    CPUs (and GPUs); "auto", "HOST:PORT" or "ray://HOST:10001" name a running cluster."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    # Ray hands the driver's sys.path to its workers, so a local instance runs this checkout's code (a per-job
    # runtime_env would cost seconds per actor start).
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if address is None and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]
    if address in (None, "local"):
        address = "local"
        kwargs["_system_config"] = LOCAL_SYSTEM_CONFIG
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"cannot start or reach Ray at {address}: {first}",
                          hint="start a cluster with `ray start --head` (docs/scale.md) or leave out --ray-address") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def node_ip() -> str:
    import ray

    return ray.util.get_node_ip_address()


def can_see(store_dir: str, probe: str, token: str, write: bool, faults: dict) -> tuple[str, str | None]:
    """(this node, None) when the store directory here is the driver's (the probe holds the token), else why not."""
    if faults.get("hide_store"):
        store_dir += "-not-mounted-here"
    path = Path(store_dir)
    try:
        if (path / probe).read_text() != token:
            return node_ip(), "it is a different directory there (the driver's probe file differs)"
        if write:
            scratch = path / "shards" / f".tmp-{probe}-{os.getpid()}"
            scratch.parent.mkdir(parents=True, exist_ok=True)
            scratch.write_text(token)
            scratch.unlink()
    except OSError as e:
        return node_ip(), f"{type(e).__name__}: {e.strerror or e}"
    return node_ip(), None


SHARED_HINT = "every Ray node must mount the store at the same path: put it on a shared filesystem (docs/scale.md)"


def visible_error(visible: tuple, write: bool, faults: dict) -> tuple | None:
    """None when this node sees the driver's store directory, else the StoreError to report, as data."""
    host, why = can_see(*visible, write, faults)
    if not why:
        return None
    what = "write to" if write else "read"
    return "StoreError", f"a Ray worker on {host} cannot {what} the store directory {visible[0]} ({why})", SHARED_HINT


@contextlib.contextmanager
def probe_file(store_path: Path) -> Iterator[tuple[str, str, str]]:
    """A probe file in the store directory while the command runs: (directory, probe name, token). The token
    also names this command's actor rebuild counts, removed with it."""
    token = uuid.uuid4().hex
    probe = PROBE_PREFIX + token
    (store_path / probe).write_text(token)
    try:
        yield str(store_path), probe, token
    finally:
        (store_path / probe).unlink(missing_ok=True)
        for counter in store_path.glob(f"{REBUILDS_PREFIX}{token}-*"):  # rebuild counts (rebuilt_too_often)
            counter.unlink(missing_ok=True)


def worker_failed(e: Exception) -> CurateError:
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return CurateError(f"a Ray worker failed: {lines[-1] if lines else type(e).__name__}",
                       hint="what is stored is kept; rerun the same command to resume")


def error_data(e: CurateError) -> tuple[str, str, str | None]:
    """A worker's typed error as data: (class name, message, hint)."""
    return type(e).__name__, e.message, e.hint


def rebuild_error(error: tuple, suffix: str = "") -> CurateError:
    """The worker's error on the driver, with its type (so the exit code matches the local executor's)."""
    from curate import errors as E

    name, message, hint = error
    cls = getattr(E, name, None)
    if not (isinstance(cls, type) and issubclass(cls, CurateError)):
        cls = BackendError
    return cls(message + suffix, hint=hint)


def one_row(result: dict) -> dict:
    """A map actor's answer for one batch: one row holding the pickled result (verdicts, counts, errors)."""
    import numpy as np

    return {"result": np.array([pickle.dumps(result)], dtype=object)}


def quiet_data(ray: Any) -> None:
    """Ray Data prints progress bars and a line per execution; the command reports its own progress."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def results(ray: Any, ds: Any) -> Iterator[dict]:
    """Run the dataset; yield each batch's result as it arrives (in any order). Leaving the loop early (an
    error) stops the pipeline and its actors."""
    # prefetch_batches=0: with the default of 1 the iterator holds each batch until the next one arrives
    batches = iter(ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0))
    try:
        for batch in batches:
            for result in batch.column("result").to_pylist():
                yield pickle.loads(result)
    except ray.exceptions.RayError as e:
        raise worker_failed(e) from None
    finally:
        batches.close()
