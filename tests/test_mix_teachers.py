"""Two teachers on the same questions: the same prompt imported from two pools is two problems (ids
include the source), yet conditions compared on "the same questions" must pick the same ones.

Run: python -m pytest -q tests/test_mix_teachers.py
"""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curate.mix import build, mix_recipe
from curate.mix.export import PARQUET
from curate.mix.recipe import load_recipe, validate_recipe
from curate.records import Problem, Sample, Verdict
from curate.store import TraceStore

ROOT = Path(__file__).resolve().parents[1]
QWEN, R1 = "Qwen/Qwen3-32B", "deepseek-ai/DeepSeek-R1"
MISSING_IN_R1 = {3, 7, 11}


def question(i: int) -> str:
    return f"A tank holds {i + 5} litres and loses {i % 3 + 1} litres per hour. After how many hours ({i}) is it empty?"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    st = TraceStore(tmp_path_factory.mktemp("teachers") / "store")
    problems, samples, verdicts = [], [], []

    def add(p: Problem, model: str) -> None:
        problems.append(p)
        s = Sample(problem_id=p.id, text=f"<think>\nlitres over rate for {p.prompt[:20]}\n</think>\n\\boxed{{{p.reference}}}",
                   backend="synthetic", model=model, finish_reason="stop", completion_tokens=30)
        samples.append(s)
        verdicts.append(Verdict(status="correct", verifier="math", version="1", score=1.0, answer=str(p.reference), sample_id=s.id))

    for i in range(30):
        add(Problem(source="openr1_pool", domain="math", prompt=question(i), reference=str(i)), QWEN)
        if i not in MISSING_IN_R1:  # the second pool spells some prompts with other spacing and case
            prompt = question(i) if i % 2 else "  " + question(i).upper().replace(" ", "  ")
            add(Problem(source="r1_pool", domain="math", prompt=prompt, reference=str(i)), R1)
    for j in range(10):  # questions only the second teacher answered
        add(Problem(source="r1_pool", domain="math", prompt=f"Only R1 saw question {j} about litres and hours in a tank.", reference="0"), R1)
    st.add_problems(problems)
    st.add_samples(samples)
    st.add_verdicts(verdicts)
    return st


def shipped(name: str, **kw):
    data = load_recipe(ROOT / "recipes" / f"{name}.yaml").model_dump(mode="json")
    return validate_recipe({**data, **kw, "decontaminate": {"enabled": False}})


def questions(mix) -> list[str]:
    return [" ".join(r["prompt"].lower().split()) for r in mix.rows]


def test_deepseek_condition_selects_the_math_cot_questions(store, tmp_path):
    ranked = questions(build.build(store, shipped("math-cot", size=30)))  # every Qwen question, in rank order
    cot = questions(build.build(store, shipped("math-cot", size=10)))
    r1 = build.build(store, shipped("deepseek-r1-teacher", size=10))
    assert set(cot) == set(ranked[:10])
    missing = {" ".join(question(i).lower().split()) for i in MISSING_IN_R1}
    assert set(questions(r1)) == set([q for q in ranked if q not in missing][:10])
    assert r1.matching["matched"] == 27 and r1.matching["candidates"] == 37
    assert not any("only r1 saw" in q for q in questions(r1))
    [manifest] = mix_recipe(shipped("deepseek-r1-teacher", size=10), store, tmp_path / "r1")
    card = (tmp_path / "r1" / "README.md").read_text()
    assert "Same questions: 27 of 37 candidate questions" in card and "all 10 rows are matched" in card
    assert manifest["matching"]["rows_matched"] == 10
    assert {r["source"] for r in pq.read_table(tmp_path / "r1" / PARQUET).to_pylist()} == {"r1_pool"}


def test_same_seed_ranks_a_question_the_same_in_every_pool(store):
    """Without same_questions_as, ranks come from the prompt key, so the overlap is already the rank order."""
    r1_all = build.build(store, validate_recipe({"name": "r1", "seed": 42, "size": 37, "decontaminate": {"enabled": False},
                                                 "sources": [{"name": "r1", "where": "model ILIKE '%deepseek-r1%'"}]}))
    cot_all = build.build(store, validate_recipe({"name": "q", "seed": 42, "size": 30, "decontaminate": {"enabled": False},
                                                  "sources": [{"name": "q", "where": "model ILIKE '%qwen3-32b%'"}]}))
    both = set(questions(r1_all)) & set(questions(cot_all))
    assert len(both) == 27
    assert [q for q in questions(r1_all) if q in both] == [q for q in questions(cot_all) if q in both]
