"""AlpacaEval's reward-model score: the `reward_model` verifier scores (prompt, answer) pairs with a local sequence
classifier, batched, in the verifier pool; `curate eval --suite paper -b alpacaeval` stores the mean reward with
a bootstrap CI and per-problem values that `evals compare` pairs. A 2-layer random reward model built from a
config and a 3-instruction AlpacaEval file; nothing is downloaded."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from curate.evaluate import metrics as M  # noqa: E402
from curate.evaluate.compare import paired_bootstrap  # noqa: E402
from curate.store import TraceStore  # noqa: E402
from curate.store.evals import read_evals  # noqa: E402
from tests.helpers import run_cli  # noqa: E402
from verifiers.base import ProbeProblem  # noqa: E402
from verifiers.pool import VerifierPool  # noqa: E402
from verifiers.registry import RegistryError, get_verifier  # noqa: E402

ALPACA = Path(__file__).parent / "fixtures" / "tasks" / "alpaca_eval.json"
PROMPTS = ["Write a poem about rain.", "What is 2 + 2?", "Say hello.", "Name a colour.", "Describe the sea."]
RESPONSES = ["<think>hmm</think>Rain falls softly on the roof.", "4", "<think>never closed", "Blue, like the sky.",
             "<think>ok</think>"]


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory) -> Path:
    from curate.generate.tiny import build_tiny_reward_model

    return build_tiny_reward_model(tmp_path_factory.mktemp("rm") / "reward")


def _reference_rewards(path: Path) -> list[float]:
    """Each pair scored alone, straight through transformers with the chat template: what a batch must reproduce."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    out = []
    for p, r in zip(PROMPTS, RESPONSES):
        answer = r.split("</think>")[-1].strip() if "</think>" in r else ("" if "<think>" in r else r)
        text = tok.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": answer}], tokenize=False)
        ids = tok(text, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out.append(float(model(**ids).logits[0, 0]))
    return out


def test_batched_rewards_equal_one_at_a_time_and_status_follows_the_threshold(reward_model):
    expected = _reference_rewards(reward_model)
    problems = [ProbeProblem(p) for p in PROMPTS]
    batched = get_verifier("reward_model", model=str(reward_model), batch_size=3).verify_batch(problems, RESPONSES)
    assert [v.score for v in batched] == pytest.approx(expected, abs=1e-5)  # padding changes no reward
    assert len(set(round(x, 6) for x in expected)) == len(expected)  # the answers really are scored apart
    middle = sorted(expected)[2]
    v = get_verifier("reward_model", model=str(reward_model), threshold=middle)
    statuses = [v.verify(p, r).status for p, r in zip(problems, RESPONSES)]
    assert statuses == ["correct" if x >= middle else "incorrect" for x in expected]
    assert "nothing after thinking" in batched[2].reason  # an unclosed think block is scored as an empty answer


def test_the_pool_hands_a_worker_whole_batches_and_keeps_every_key(reward_model):
    expected = _reference_rewards(reward_model)
    opts = {"model": str(reward_model), "batch_size": 2}
    # a math task between the reward tasks ends one batch early; every key still gets its own verdict
    tasks = [(f"r{i}", "reward_model", opts, ProbeProblem(p), r) for i, (p, r) in enumerate(zip(PROMPTS[:3], RESPONSES[:3]))]
    tasks += [("m", "math", {}, ProbeProblem("1+1?", reference="2"), "\\boxed{2}")]
    tasks += [(f"r{i}", "reward_model", opts, ProbeProblem(p), r) for i, (p, r) in enumerate(zip(PROMPTS, RESPONSES)) if i >= 3]
    with VerifierPool(workers=1, context="spawn") as pool:
        got = dict(pool.run(tasks))
    assert got["m"].status == "correct"
    assert [got[f"r{i}"].score for i in range(5)] == pytest.approx(expected, abs=1e-5)
    assert all(got[f"r{i}"].verifier == "reward_model" and got[f"r{i}"].duration_s > 0 for i in range(5))


def test_another_reward_model_or_threshold_is_another_verdict_version(reward_model, tmp_path):
    """Stored verdicts are reused by (verifier, version): a different reward model must never reuse them."""
    from curate.generate.tiny import build_tiny_reward_model

    other = build_tiny_reward_model(tmp_path / "other-rm", seed=1)
    v = get_verifier("reward_model", model=str(reward_model))
    assert v.version == get_verifier("reward_model", model=str(reward_model), batch_size=32).version  # same scores
    assert v.version.startswith("1-")
    assert len({v.version, get_verifier("reward_model", model=str(other)).version,
                get_verifier("reward_model", model=str(reward_model), threshold=1.0).version}) == 3


def test_a_reward_model_that_cannot_load_is_error_never_a_score(tmp_path):
    (tmp_path / "broken").mkdir()
    v = get_verifier("reward_model", model=str(tmp_path / "broken"))
    out = v.verify_batch([ProbeProblem("hi")] * 2, ["a", "b"])
    assert [x.status for x in out] == ["error", "error"] and "cannot load reward model" in out[0].reason


def test_missing_or_mistyped_reward_model_is_refused_by_name():
    with pytest.raises(RegistryError, match="needs the reward model: option 'model' is not set") as e:
        get_verifier("reward_model")
    # the option is named; how to set it is each command's hint (this package does not know the command line)
    assert e.value.missing == "model" and "--set" not in str(e.value) and "--option" not in str(e.value)
    with pytest.raises(RegistryError, match="/no/such/rm: no such folder"):
        get_verifier("reward_model", model="/no/such/rm")


def test_the_verifier_list_describes_it_though_it_needs_a_model_to_be_built():
    from verifiers.registry import describe_all

    (info,) = [d for d in describe_all() if d["name"] == "reward_model"]
    assert info["version"] == "1" and "needs model=PATH" in info["description"] and "broken" not in info["description"]


def test_mean_score_and_its_paired_difference_keep_the_reward_units():
    assert M.parse_metric("reward") == ("reward", None)
    assert M.mean_score([[1.0, 3.0], [-2.0]]) == pytest.approx(0.0)  # per problem first: (2 + -2) / 2
    a, b = {"p1": 0.5, "p2": -1.0, "p3": 2.0}, {"p1": 1.5, "p2": -0.5, "p3": 2.0}
    bs = paired_bootstrap(a, b, resamples=500, scale=1.0)
    assert bs["diff"] == pytest.approx(0.5) and bs["ci_low"] <= 0.5 <= bs["ci_high"]


def _eval_args(ck: Path, store: Path, rm: Path | None) -> list[str]:
    args = ["eval", str(ck), "--suite", "paper", "-b", "alpacaeval", "--backend", "hf", "--no-progress", "--store",
            str(store), "--max-tokens", "8", "--n", "2", "--workers", "2"]
    return args + (["--set", f"alpacaeval.verifier_options.model={rm}"] if rm else [])


def test_alpacaeval_end_to_end_stores_the_mean_reward_with_ci_and_per_problem_values(tmp_path, reward_model):
    from curate.generate.tiny import build_tiny_model

    env = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    store = tmp_path / "store"
    ck = build_tiny_model(tmp_path / "run" / "checkpoints" / "step-000005")
    added = run_cli("tasks", "add", "alpacaeval", "--set", f"path={ALPACA}", "--store", str(store), env=env, timeout=300)
    assert added.returncode == 0, added.stderr

    missing = run_cli(*_eval_args(ck, store, None), env=env, timeout=300)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr, missing.stderr
    assert "benchmark alpacaeval: verifier 'reward_model': needs the reward model" in missing.stderr
    assert "hint: set it with `--set alpacaeval.verifier_options.model=VALUE`" in missing.stderr
    assert "--option" not in missing.stderr  # that is how `curate verify` sets it, not `curate eval`
    assert TraceStore(store).query("SELECT count(*) AS n FROM eval_samples").to_pylist() == [{"n": 0}]  # nothing planned

    r = run_cli(*_eval_args(ck, store, reward_model), env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = [x for x in read_evals(TraceStore(store), "benchmark = 'alpacaeval' AND kind = 'score'")]
    assert [(x["metric"], x["step"], x["n_problems"], x["n_samples"], x["complete"]) for x in rows] == [("reward", 5, 3, 6, True)]
    row = rows[0]
    details = json.loads(row["details"]) if isinstance(row["details"], str) else row["details"]
    # the stored value is the mean over problems of each problem's mean verdict score, recomputed from the store
    scores = TraceStore(store).query(
        "SELECT e.problem_id, v.score FROM eval_samples e JOIN verdicts v ON v.sample_id = e.sample_id "
        "WHERE e.benchmark = 'alpacaeval' AND v.verifier = 'reward_model'").to_pylist()
    per: dict[str, list[float]] = {}
    for s in scores:
        per.setdefault(s["problem_id"], []).append(s["score"])
    assert len(scores) == 6 and len(per) == 3
    assert row["value"] == pytest.approx(sum(sum(v) / len(v) for v in per.values()) / 3, abs=1e-9)
    assert row["ci_low"] <= row["value"] <= row["ci_high"]
    assert details["per_problem"] == pytest.approx({k: sum(v) / len(v) for k, v in per.items()}, abs=1e-6)
    assert "not percent" in details["scale"]

    again = run_cli(*_eval_args(ck, store, reward_model), env=env, timeout=600)  # everything judged: nothing rescored
    assert again.returncode == 0 and "0 labeled" in again.stdout + again.stderr, again.stderr

    # another checkpoint as run B: `evals compare` pairs the two on the instructions, in the reward's own units
    other = build_tiny_model(tmp_path / "other" / "checkpoints" / "step-000005", seed=1)
    r = run_cli(*_eval_args(other, store, reward_model), env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    b = read_evals(TraceStore(store), "benchmark = 'alpacaeval' AND kind = 'score' AND run = 'other'")[0]
    pb = json.loads(b["details"]) if isinstance(b["details"], str) else b["details"]
    cmp = run_cli("evals", "compare", row["run"], "other", "--store", str(store), "--json", env=env)
    assert cmp.returncode == 0, cmp.stderr
    (c,) = json.loads(cmp.stdout)["rows"]
    assert (c["metric"], c["unit"], c["method"], c["n_problems"]) == ("reward", "score", "paired bootstrap", 3)
    diffs = [pb["per_problem"][k] - details["per_problem"][k] for k in per]
    assert c["diff"] == pytest.approx(sum(diffs) / 3, abs=1e-5) and c["diff"] == pytest.approx(b["value"] - row["value"], abs=1e-5)
