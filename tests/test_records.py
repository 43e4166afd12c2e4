"""Records: content-hash ids are stable, canonical, and sensitive to exactly the fields that define identity."""
from __future__ import annotations

import pytest

from curate.records import Problem, Sample, Verdict, canonical_json, sample_ids_of


def test_problem_id_is_content_hash():
    a = Problem(source="countdown", domain="game", prompt="Numbers: [1, 2]\nTarget: 3", reference={"target": 3})
    b = Problem(source="countdown", domain="game", prompt="Numbers: [1, 2]\nTarget: 3", reference={"target": 3}, metadata={"seed": 9})
    c = Problem(source="countdown", domain="game", prompt="Numbers: [1, 2]\nTarget: 4", reference={"target": 4})
    assert a.id == b.id  # metadata does not change identity
    assert a.id != c.id
    assert len(a.id) == 32


def test_sample_id_includes_generator_identity():
    base = dict(problem_id="p" * 32, text="x", backend="vllm", model="Qwen/Qwen3-32B", params={"temperature": 0.6, "top_p": 0.95})
    s = Sample(**base)
    assert Sample(**{**base, "text": "different text"}).id == s.id  # text is output, not identity
    assert Sample(**{**base, "params": {"temperature": 0.7, "top_p": 0.95}}).id != s.id
    assert Sample(**{**base, "model": "other"}).id != s.id
    assert Sample(**{**base, "sample_index": 1}).id != s.id
    assert Sample(**{**base, "seed": 1}).id != s.id
    assert Sample(**{**base, "revision": "abc"}).id != s.id
    # params order does not matter
    assert Sample(**{**base, "params": {"top_p": 0.95, "temperature": 0.6}}).id == s.id
    assert Sample.identity(s.problem_id, s.generator, 0, None) == s.id


@pytest.mark.parametrize("generator", [
    {"backend": "vllm", "model": "Qwen/Qwen3-32B", "revision": None, "params": {"temperature": 0.6, "top_p": 0.95}},
    {"backend": "openai", "model": 'ü "quoted"\\', "revision": "r1", "params": {"stop": ["\n", "é"], "x": None, "y": 1e-7}},
])
def test_planned_ids_are_sample_identity(generator):
    """A plan writes the generator's JSON once; the ids must be exactly those `Sample.identity` gives."""
    sample_id = sample_ids_of(generator)
    for pid in ("p" * 32, 'ü"\\\n'):
        for index in (0, 1, 65_535):
            for seed in (None, 0, 7, -3):
                assert sample_id(pid, index, seed) == Sample.identity(pid, generator, index, seed)


def test_round_trip_and_canonical_json():
    p = Problem(source="s", domain="math", prompt="1+1?", reference="2", metadata={"b": 1, "a": [1, 2]})
    assert Problem.from_dict(p.to_dict()) == p
    assert canonical_json({"b": 1, "a": 2}) == '{"a":2,"b":1}'
    s = Sample(problem_id=p.id, text="t", backend="synthetic", model="dfs", finish_reason="stop")
    assert Sample.from_dict(s.to_dict()) == s


def test_invalid_values_rejected():
    with pytest.raises(ValueError):
        Problem(source="s", domain="math", prompt="x", split="dev")
    with pytest.raises(ValueError):
        Sample(problem_id="p", text="t", backend="b", model="m", finish_reason="eos")
    with pytest.raises(ValueError):
        Verdict(status="wrong", verifier="math", version="1")
