"""Evaluation: every checkpoint on every benchmark, stored beside the traces (`curate eval`, `curate evals`).

suite.py (YAML suites, validated like recipes), targets.py (what TARGET means: a checkpoint, a training run,
a hub id, an endpoint), runner.py (generate -> label -> aggregate through the existing stages), metrics.py
(avg@k, pass@k, maj@k, bootstrap CIs; pure), results.py (published results import, the wide table),
lmeval.py (lm-evaluation-harness tasks into the same table), command.py (the CLI options, fan-out to
one process per checkpoint). Results live in the store's `evals` view.
"""


def evaluate_command(*args, **kwargs):
    """Lazy wrapper so `import curate.evaluate` stays light."""
    from curate.evaluate.command import evaluate_command as run

    return run(*args, **kwargs)
