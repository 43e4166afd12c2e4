"""Studies: one YAML file names a grid (data conditions x base models x seeds), a training config and an
eval suite; `curate study run FILE` builds each mixture once, trains and evaluates every cell and writes
a report, resumably, with lineage from every eval row back to its recipe and store snapshot.

Modules: spec (the file model), plan (cells and the node DAG: plain curate command lines), state
(completion markers, content hashes, stale detection), executors (local, slurm), runner (the commands),
tiny (the CPU studies' base model). Shipped studies live in `studies/` at the repository root.
"""
from curate.study.plan import build_plan
from curate.study.runner import plan_study, run_study, show_study, study_status
from curate.study.spec import StudySpec, load_study

__all__ = ["StudySpec", "load_study", "build_plan", "plan_study", "run_study", "study_status", "show_study"]
