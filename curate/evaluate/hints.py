"""The one-line remedy for a benchmark whose problems are not in the store: which `curate tasks add` adds them."""
from __future__ import annotations

from curate.tasks import TASKS

# Offline use needs a local copy; the command names the option that points at it.
_PATH_HINT = " --set path=LOCAL_COPY"


def add_hint(task: str) -> str:
    name = task.replace("-", "_")
    spec = TASKS.get(name)
    if spec is None:
        return "`curate tasks list` shows the known tasks; add this benchmark's problems with `curate tasks add ... --split eval`"
    if spec.generated:
        return f"add them with `curate tasks add {name} --split eval --size N`, or give the suite an auto_add entry"
    cmd = f"curate tasks add {name}" + ("" if spec.default_split == "eval" else " --split eval")
    if name in ("math500", "aime24", "gpqa_diamond", "mmlu_pro", "livecodebench", "hex_phi", "alpacaeval", "hf"):
        return f"add them with `{cmd}` (needs the network), or offline `{cmd}{_PATH_HINT}`"
    return f"add them with `{cmd}`"
