"""Evaluation: every checkpoint on every benchmark, stored beside the traces (`curate eval`, `curate evals`).

suite.py (YAML suites, validated like recipes), targets.py (what TARGET means: a checkpoint, a training run,
a hub id, an endpoint), runner.py (generate -> label -> aggregate through the existing stages), metrics.py
(avg@k, pass@k, maj@k, bootstrap CIs; pure), results.py (published results import, the wide table),
lmeval.py (lm-evaluation-harness tasks into the same table). Results live in the store's `evals` view.
"""
