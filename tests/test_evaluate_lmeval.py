"""lm-evaluation-harness through `curate eval --lm-eval`: a tiny local task runs on a tiny checkpoint and its
rows land in the `evals` table (percent, with the harness's interval); a rerun skips it; result conversion."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("lm_eval")

from curate.evaluate.lmeval import rows_from_results  # noqa: E402
from curate.evaluate.targets import Target  # noqa: E402
from curate.store import TraceStore  # noqa: E402
from curate.store.evals import read_evals  # noqa: E402
from tests.helpers import run_cli  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "lmeval" / "tiny_arith.yaml"


def test_result_conversion_scales_accuracies_and_skips_bookkeeping():
    t = Target(run="r", checkpoint="c", step=3, model_ref="c", identity="c", lineage={"recipe_hash": "abc"})
    res = {"results": {"ifeval": {"alias": "ifeval", "prompt_level_strict_acc,none": 0.25,
                                  "prompt_level_strict_acc_stderr,none": 0.05, "sample_len": 10},
                       "wikitext": {"word_perplexity,none": 31.5}},
           "versions": {"ifeval": 4.0}, "n-samples": {"ifeval": {"effective": 10}}}
    rows = {r["metric"]: r for r in rows_from_results(res, t, "h")}
    assert set(rows) == {"prompt_level_strict_acc", "word_perplexity"}
    acc = rows["prompt_level_strict_acc"]
    assert acc["value"] == pytest.approx(25.0) and acc["ci_low"] == pytest.approx(15.2) and acc["ci_high"] == pytest.approx(34.8)
    assert acc["n_problems"] == 10 and acc["recipe_hash"] == "abc" and acc["step"] == 3 and acc["provenance"] == "lm-eval"
    assert rows["word_perplexity"]["value"] == 31.5  # not a share: stored as reported


def test_scaling_goes_by_metric_not_by_value():
    t = Target(run="r", checkpoint="c", step=3, model_ref="c", identity="c")
    rows = []
    for step, mcc, acc, bleu in ((1, -0.05, 0.5, 0.4), (2, 0.20, 0.6, 12.0)):
        res = {"results": {"t": {"mcc,none": mcc, "acc,none": acc, "bleu_max,none": bleu, "bleu_acc,none": 0.3}}}
        rows += rows_from_results(res, Target(**{**t.__dict__, "step": step}), "h")
    by = {(r["step"], r["metric"]): r for r in rows}
    assert by[(1, "mcc")]["value"] == -0.05 and by[(2, "mcc")]["value"] == 0.20  # one scale on the whole curve
    assert by[(1, "acc")]["value"] == 50.0 and by[(2, "acc")]["value"] == 60.0
    assert by[(1, "bleu_max")]["value"] == 0.4 and by[(2, "bleu_max")]["value"] == 12.0
    assert by[(1, "bleu_acc")]["value"] == 30.0
    assert by[(2, "mcc")]["details"]["scale"] == 1.0 and by[(2, "acc")]["details"]["scale"] == 100.0


def test_lm_eval_task_runs_on_a_checkpoint_and_lands_in_evals(tmp_path):
    from curate.generate.tiny import build_tiny_model

    ck = build_tiny_model(tmp_path / "run" / "checkpoints" / "step-000005")
    data = tmp_path / "tasks" / "data.jsonl"
    data.parent.mkdir()
    data.write_text("".join(json.dumps({"question": f"What is {a} + 1?", "choices": [str(a + 1), str(a + 2)], "answer": 0}) + "\n"
                            for a in range(6)))
    (tmp_path / "tasks" / "tiny_arith.yaml").write_text(FIXTURE.read_text().replace("DATA_FILE", str(data)))
    store = tmp_path / "store"
    args = ["eval", str(ck), "--suite", "smoke", "-b", "safety", "--backend", "hf", "--max-tokens", "8", "--workers", "1",
            "--no-progress", "--store", str(store), "--lm-eval", "tiny_arith", "--lm-eval-include", str(tmp_path / "tasks")]
    r = run_cli(*args, env={"OMP_NUM_THREADS": "1"}, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = read_evals(TraceStore(store), "suite = 'lm-eval'")
    assert [(x["benchmark"], x["metric"], x["step"], x["run"]) for x in rows] == [("tiny_arith", "acc", 5, "run")]
    assert any(rows[0]["value"] == pytest.approx(100 * k / 6) for k in range(7)) and rows[0]["n_problems"] == 6
    again = run_cli(*args, env={"OMP_NUM_THREADS": "1"}, timeout=600)
    assert again.returncode == 0, again.stderr
    assert read_evals(TraceStore(store), "suite = 'lm-eval'") == rows
    bad = run_cli(*args[:-4], "--lm-eval", "no_such_task_xyz", "--lm-eval-include", str(tmp_path / "tasks"), timeout=600)
    assert bad.returncode != 0 and "unknown task 'no_such_task_xyz'" in bad.stderr and "Traceback" not in bad.stderr


def _paper_general(tmp_path, *names: str, extra: tuple = (), ifeval: str = "ifeval_tiny.jsonl", nltk_data: Path | None = None):
    """`curate eval CHECKPOINT --suite paper -b NAME...` on fixture-sized local copies of the general benchmarks."""
    from curate.generate.tiny import build_tiny_model

    ck = build_tiny_model(tmp_path / "run" / "checkpoints" / "step-000005")
    # IFEval's module looks for punkt_tab when it is imported (and downloads it when missing): an empty folder
    # satisfies that look-up; only the sentence-counting instructions read the data itself
    (tmp_path / "nltk" / "tokenizers" / "punkt_tab").mkdir(parents=True)
    fixtures = Path(__file__).parent / "fixtures" / "lmeval"
    args = ["eval", str(ck), "--suite", "paper", "--backend", "hf", "--no-progress", "--store", str(tmp_path / "store"),
            "--set", f"ifeval.data={fixtures / ifeval}", "--set", "ifeval.max_tokens=8",
            "--set", f"truthfulqa.data={fixtures / 'truthfulqa_tiny.jsonl'}",
            "--set", f"halueval.data={fixtures / 'halueval_tiny.jsonl'}", *extra]
    for n in names:
        args += ["-b", n]
    env = {"OMP_NUM_THREADS": "1", "NLTK_DATA": str(nltk_data or tmp_path / "nltk"), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    return args, env


def test_truthfulqa_and_halueval_of_the_paper_suite_run_offline_from_local_data(tmp_path):
    """The harness's own truthfulqa_mc2 task on a 3-question local file, and curate's shipped halueval_qa task on
    2 HaluEval rows (4 judgements: each right and each hallucinated answer): stored under the suite entries'
    names, in percent; a rerun skips them."""
    args, env = _paper_general(tmp_path, "truthfulqa", "halueval")
    r = run_cli(*args, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = read_evals(TraceStore(tmp_path / "store"), "suite = 'lm-eval'")
    assert sorted((x["benchmark"], x["metric"], x["step"], x["n_problems"]) for x in rows) == [
        ("halueval", "acc", 5, 4), ("truthfulqa", "acc", 5, 3)]
    assert all(0 <= x["value"] <= 100 for x in rows)
    halu = next(x for x in rows if x["benchmark"] == "halueval")
    assert any(halu["value"] == pytest.approx(25.0 * k) for k in range(5))
    again = run_cli(*args, env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert read_evals(TraceStore(tmp_path / "store"), "suite = 'lm-eval'") == rows


def test_ifeval_of_the_paper_suite_runs_offline_from_local_data(tmp_path):
    pytest.importorskip("langdetect")  # IFEval's own dependency (lm-eval[ifeval])
    args, env = _paper_general(tmp_path, "ifeval")
    r = run_cli(*args, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = {x["metric"]: x for x in read_evals(TraceStore(tmp_path / "store"), "suite = 'lm-eval' AND benchmark = 'ifeval'")}
    assert set(rows) == {"prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc"}
    assert rows["prompt_level_strict_acc"]["n_problems"] == 2 and all(0 <= x["value"] <= 100 for x in rows.values())


def _installed_punkt_tab() -> Path | None:
    """The NLTK data folder holding a real punkt_tab, if this machine has one (tests never download it)."""
    import nltk

    try:
        found = Path(str(nltk.data.find("tokenizers/punkt_tab/english/")))
    except LookupError:
        return None
    return found.parents[2]


def test_ifeval_sentence_counting_runs_with_installed_punkt_tab(tmp_path):
    """The instructions that count sentences read nltk's punkt_tab; run them where the data is installed."""
    pytest.importorskip("langdetect")
    data = _installed_punkt_tab()
    if data is None:
        pytest.skip("nltk's punkt_tab data is not installed (python -m nltk.downloader punkt_tab); tests never download it")
    args, env = _paper_general(tmp_path, "ifeval", ifeval="ifeval_sentences.jsonl", nltk_data=data)
    r = run_cli(*args, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = read_evals(TraceStore(tmp_path / "store"), "suite = 'lm-eval' AND benchmark = 'ifeval'")
    assert len(rows) == 4 and all(x["n_problems"] == 1 and x["value"] in (0.0, 100.0) for x in rows)


def test_ifeval_sentence_counting_without_punkt_tab_is_one_line(tmp_path):
    """Offline without punkt_tab: one line naming the data and how to install it, not nltk's banner and traceback."""
    pytest.importorskip("langdetect")
    args, env = _paper_general(tmp_path, "ifeval", ifeval="ifeval_sentences.jsonl")  # the empty punkt_tab folder
    r = run_cli(*args, env=env, timeout=600)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "*****" not in r.stderr, r.stderr
    assert "lm-eval task ifeval needs nltk data tokenizers/punkt_tab" in r.stderr
    assert "nltk.downloader punkt_tab" in r.stderr


def test_ifeval_without_its_dependency_is_one_line(tmp_path):
    import importlib.util

    if importlib.util.find_spec("langdetect") is not None:
        pytest.skip("langdetect is installed")
    args, env = _paper_general(tmp_path, "ifeval")
    r = run_cli(*args, env=env, timeout=600)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert "lm-eval task ifeval needs the package langdetect" in r.stderr


def test_suite_lm_eval_entries_are_validated_selected_and_overridden():
    from curate.errors import ConfigError
    from curate.evaluate.suite import load_suite

    s = load_suite("paper", {"truthfulqa.data": "/x/tq.jsonl", "limit": "5"}).select(["truthfulqa", "math500"])
    assert [b.name for b in s.benchmarks] == ["math500"] and s.benchmarks[0].limit == 5
    [t] = s.lm_eval
    assert (t.name, t.task, t.data, t.limit) == ("truthfulqa", "truthfulqa_mc2", "/x/tq.jsonl", 5)
    with pytest.raises(ConfigError, match="lm_eval.0.data"):
        load_suite("paper", {"ifeval.data": "/x/ifeval.txt"})
    with pytest.raises(ConfigError, match="lm_eval.1.colour"):
        load_suite("paper", {"truthfulqa.colour": "red"})


def test_halueval_rows_become_a_right_and_a_hallucinated_judgement_each():
    """The shipped task's documents: per HaluEval row, its right answer targets "No" (not hallucinated) and its
    hallucinated answer "Yes", in the harness's choice order from the task file."""
    import datasets
    import yaml

    from curate.evaluate.lmeval import SHIPPED_TASKS
    from curate.evaluate.suites.lm_eval.halueval_utils import qa_judgements

    fixture = Path(__file__).parent / "fixtures" / "lmeval" / "halueval_tiny.jsonl"
    src = [json.loads(line) for line in fixture.read_text().splitlines() if line.strip()]
    docs = list(qa_judgements(datasets.Dataset.from_list(src)))
    text = (SHIPPED_TASKS / "halueval_qa.yaml").read_text().replace("!function", "")
    choices = yaml.safe_load(text)["doc_to_choice"]
    assert len(docs) == 2 * len(src)
    got = [(d["question"], d["answer"], choices[d["label"]]) for d in docs]
    want = [x for r in src for x in ((r["question"], r["right_answer"], "No"), (r["question"], r["hallucinated_answer"], "Yes"))]
    assert got == want
