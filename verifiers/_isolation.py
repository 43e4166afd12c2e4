"""Which isolation the code sandbox gets on this machine: the level and interpreter probed once per process, the
work root that holds every run's work dir, and the scrubbed environment a program starts with.

What each level isolates is stated in verifiers/sandbox.py, the public module; this one only decides.
Test: `python -m pytest -q tests/test_sandbox.py`.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

NOBODY = 65534
ROOT_ENV = "CURATE_SANDBOX_ROOT"
PYTHON_ENV = "CURATE_SANDBOX_PYTHON"
_UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
_NS_FLAGS = ["--net", "--pid", "--fork", "--kill-child", "--mount-proc"]


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot run programs as configured; the message names the path and the fix."""


def base_env(workdir: str) -> dict[str, str]:
    """The whole environment a program sees: nothing of the caller's leaks in."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": workdir,
        "TMPDIR": workdir,
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
    }


def _probe_prefix(level: str) -> list[str]:
    """The probe's command prefix: at root-ns it changes to nobody, proving nobody can run the interpreter."""
    if level == "root-ns":
        return [_UNSHARE, *_NS_FLAGS, "--setgid", str(NOBODY), "--setuid", str(NOBODY)]
    return run_prefix(level)


def run_prefix(level: str) -> list[str]:
    """A run's prefix: the interpreter starts as its namespace's root, sets up the scratch, then (root-ns)
    drops to nobody itself (verifiers/_harness.py `main`) before any untrusted code."""
    if level == "root-ns":
        return [_UNSHARE, *_NS_FLAGS]
    if level == "user-ns":
        return [_UNSHARE, "--user", "--map-root-user", *_NS_FLAGS]
    return []


def _default_pythons() -> list[str]:
    out = [sys.executable]
    for p in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(p) and os.path.realpath(p) != os.path.realpath(sys.executable):
            out.append(p)
    return out


def _probe(level: str, python: str) -> bool:
    cmd = [*_probe_prefix(level), python, "-I", "-c", "import json, socket; print('ok')"]
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=20, cwd="/", env=base_env("/"))
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0 and r.stdout.strip() == b"ok"


_CHOSEN: dict[str, object] = {}


def isolation() -> tuple[str, str]:
    """(level, interpreter) used for every run in this process; see verifiers/sandbox.py. Raises
    SandboxUnavailable when CURATE_SANDBOX_PYTHON names an interpreter the sandbox user cannot run while the
    strongest level works with the default one: that would silently weaken the isolation."""
    if "result" not in _CHOSEN:
        try:
            _CHOSEN["result"] = _choose()
        except SandboxUnavailable as e:
            _CHOSEN["result"] = e
    out = _CHOSEN["result"]
    if isinstance(out, SandboxUnavailable):
        raise out
    return out  # type: ignore[return-value]


def _choose() -> tuple[str, str]:
    forced_level = os.environ.get("CURATE_SANDBOX_ISOLATION")
    forced_py = os.environ.get(PYTHON_ENV)
    if forced_py and not (os.path.isfile(forced_py) and os.access(forced_py, os.X_OK)):
        raise SandboxUnavailable(f"{PYTHON_ENV}={forced_py} is not an executable file; point it at a Python "
                                 "interpreter or unset it")
    pythons = [forced_py] if forced_py else _default_pythons()
    levels = [forced_level] if forced_level else (["root-ns"] if os.geteuid() == 0 else []) + ["user-ns", "none"]
    for level in levels:
        for python in pythons:
            if level == "none" or _probe(level, python):
                return level, python
        if level == "root-ns" and forced_py and any(_probe(level, p) for p in _default_pythons()):
            raise SandboxUnavailable(
                f"{PYTHON_ENV}={forced_py} cannot be run by the sandbox user nobody (uid {NOBODY}), so programs "
                "would run as root; make the interpreter and every directory above it readable and executable "
                "by others (for example a venv under /opt), or unset it")
    return "none", pythons[0]


# ---------------------------------------------------------------- the work root

def _blocked_for_nobody(path: Path) -> str | None:
    """The first directory on the way to `path` that uid/gid nobody cannot enter, or None."""
    for d in [*reversed(path.parents), path]:
        try:
            st = os.stat(d)
        except OSError:
            return None  # not created yet: its parents were fine
        bit = 0o100 if st.st_uid == NOBODY else 0o010 if st.st_gid == NOBODY else 0o001
        if not st.st_mode & bit:
            return str(d)
    return None


def _own_dir(root: Path) -> None:
    """Create `root` (mode 711: the sandbox user may enter, nobody may list) or accept it if it is a real
    directory of ours that no one else can write to (so no one can swap a run's files)."""
    try:
        os.mkdir(root, 0o711)
        os.chmod(root, 0o711)  # mkdir's mode passes through the umask
        return
    except FileExistsError:
        pass
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode):
        raise SandboxUnavailable(f"sandbox work root {root} exists and is not a directory")
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise SandboxUnavailable(f"sandbox work root {root} is owned by uid {st.st_uid} or writable by others; "
                                 f"remove it or set {ROOT_ENV} to a directory of your own")


_ROOTS: dict[tuple, object] = {}


def work_root(level: str) -> Path:
    """The directory that holds every run's work dir, independent of the caller's TMPDIR: $CURATE_SANDBOX_ROOT,
    else `curate-sandbox-<uid>` in the first of TMPDIR, /tmp, /var/tmp, /dev/shm that the sandbox user can
    reach. Raises SandboxUnavailable naming the path and the fix when none can be used."""
    key = (level, os.environ.get(ROOT_ENV), tempfile.gettempdir(), os.geteuid())
    if key not in _ROOTS:
        try:
            _ROOTS[key] = _find_root(level)
        except (SandboxUnavailable, OSError) as e:
            _ROOTS[key] = e if isinstance(e, SandboxUnavailable) else SandboxUnavailable(f"sandbox work root: {e}")
    out = _ROOTS[key]
    if isinstance(out, SandboxUnavailable):
        raise out
    return out  # type: ignore[return-value]


def _find_root(level: str) -> Path:
    forced = os.environ.get(ROOT_ENV)
    if forced:
        roots = [Path(forced).absolute()]
    else:
        bases = dict.fromkeys([tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"])
        roots = [Path(b).absolute() / f"curate-sandbox-{os.geteuid()}" for b in bases if os.path.isdir(b)]
    problems = []
    for root in roots:
        blocked = _blocked_for_nobody(root) if level == "root-ns" else None
        if blocked:
            problems.append(f"{blocked} is closed to nobody")
            continue
        _own_dir(root)
        return root
    fix = (f"set {ROOT_ENV} to a directory whose parents others may enter (chmod o+x)" if not forced else
           f"chmod o+x the directories above {forced}, or point {ROOT_ENV} elsewhere")
    raise SandboxUnavailable(f"the code sandbox has no work directory its user (nobody) can enter "
                             f"({'; '.join(problems) or 'no candidate'}); {fix}")


def new_work_dir(level: str) -> str:
    """A fresh work dir (mode 700) for one run under the work root. Raises SandboxUnavailable when none can be made."""
    try:
        return tempfile.mkdtemp(prefix="curate-sbx-", dir=work_root(level))
    except FileNotFoundError:  # a tmp cleaner removed the work root during a long job: make it again
        _ROOTS.clear()
    try:
        return tempfile.mkdtemp(prefix="curate-sbx-", dir=work_root(level))
    except OSError as e:
        raise SandboxUnavailable(f"sandbox work root: {e}") from None
