"""Mixtures from a real (small) trace store: determinism, every knob measured in the output,
decontamination, dedup, the dataset card, the shipped recipes, and bad input.

The store is built once per module through the public TraceStore API (tests/fixtures/mix/fixture_store.py).
Run: python -m pytest -q tests/test_mix.py
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import fixture_store  # noqa: E402

from curate.errors import ConfigError, InputError, StoreError  # noqa: E402
from curate.mix import build, mix_recipe  # noqa: E402
from curate.mix.recipe import STUDY_TEMPLATE, list_recipes, load_recipe, validate_recipe  # noqa: E402
from curate.mix.transforms import strip_thinking  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QWEN_MATH = "domain = 'math' AND model ILIKE '%qwen3-32b%'"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return fixture_store.build(tmp_path_factory.mktemp("mixstore") / "store")


def recipe(**kw):
    data = {"name": "t", "seed": 7, "size": 20, "sources": [{"name": "qwen", "where": QWEN_MATH}],
            "filters": {"no_truncation": True}, "decontaminate": {"n": 8}}
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k] = {**data[k], **v}
        else:
            data[k] = v
    return validate_recipe(data)


def run(store, out: Path, **kw):
    [manifest] = mix_recipe(recipe(**kw), store, out)
    return manifest, pq.read_table(out / "data" / "train-00000-of-00001.parquet").to_pylist()


def texts(store, ids):
    t = store.query("SELECT id, text FROM traces WHERE list_contains($ids, id)", {"ids": list(ids)})
    return dict(zip(t.column("id").to_pylist(), t.column("text").to_pylist()))


def statuses(store, ids):
    t = store.query("SELECT id, status FROM traces WHERE list_contains($ids, id)", {"ids": list(ids)})
    return dict(zip(t.column("id").to_pylist(), t.column("status").to_pylist()))


def file_hashes(d: Path) -> dict:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}


def test_same_recipe_same_store_gives_byte_identical_files(store, tmp_path):
    kw = dict(quality={"incorrect_fraction": 0.5, "truncate_fraction": 0.2})
    run(store, tmp_path / "a", **kw)
    run(store, tmp_path / "b", **kw)
    a, b = file_hashes(tmp_path / "a"), file_hashes(tmp_path / "b")
    assert a == b
    assert {"README.md", "manifest.json", "data/train-00000-of-00001.parquet", "dataset/dataset_info.json"} <= set(a)
    other, _ = run(store, tmp_path / "c", seed=8)
    assert other["recipe_hash"] != json.loads((tmp_path / "a" / "manifest.json").read_text())["recipe_hash"]


def test_default_is_one_random_correct_trace_per_problem_in_the_study_format(store, tmp_path):
    manifest, rows = run(store, tmp_path / "o")
    assert manifest["rows"] == len(rows) == 20
    assert {r["status"] for r in rows} == {"correct"} and {r["transform"] for r in rows} == {"none"}
    assert len({r["problem_id"] for r in rows}) == 20
    assert statuses(store, [r["sample_id"] for r in rows]) == {r["sample_id"]: "correct" for r in rows}
    stored = texts(store, [r["sample_id"] for r in rows])
    for r in rows:
        roles = [m["role"] for m in r["messages"]]
        assert roles == ["user", "assistant"]
        user = r["messages"][0]["content"]
        assert user.endswith("\nPlease reason step by step, and put your final answer within \\boxed{}.")
        assert r["messages"][1]["content"] == stored[r["sample_id"]]
    # both correct traces of a problem get picked across problems: the pick is random, not "first"
    idx = store.query("SELECT id, sample_index FROM samples")
    index = dict(zip(idx.column("id").to_pylist(), idx.column("sample_index").to_pylist()))
    assert {index[r["sample_id"]] for r in rows} >= {0, 1}


def test_choice_for_a_problem_does_not_depend_on_other_problems(store, tmp_path):
    _, full = run(store, tmp_path / "full", size=40)
    _, half = run(store, tmp_path / "half", size=10, sources=[{"name": "qwen", "where": QWEN_MATH + " AND problem_id < '8'"}])
    chosen = {r["problem_id"]: r["sample_id"] for r in full}
    shared = [r for r in half if r["problem_id"] in chosen]
    assert len(shared) >= 5
    assert all(chosen[r["problem_id"]] == r["sample_id"] for r in shared)


def test_system_prompt_and_prompt_that_already_has_the_instruction(store, tmp_path):
    _, rows = run(store, tmp_path / "o", output={"system_prompt": "You are careful."})
    assert all(r["messages"][0] == {"role": "system", "content": "You are careful."} for r in rows)
    from curate.mix.transforms import user_turn

    q = "What is 2+2?\nPlease reason step by step, and put your final answer within \\boxed{}."
    assert user_turn(q, STUDY_TEMPLATE) == q
    assert user_turn("What is 2+2?", STUDY_TEMPLATE) == q


def test_incorrect_fraction_swaps_that_share_for_length_matched_incorrect_traces(store, tmp_path):
    _, base = run(store, tmp_path / "base", size=30)
    manifest, rows = run(store, tmp_path / "half", size=30, quality={"incorrect_fraction": 0.5})
    assert sum(r["status"] == "incorrect" for r in rows) == 15
    assert {r["transform"] for r in rows if r["status"] == "incorrect"} == {"incorrect"}
    inc_ids = [r["sample_id"] for r in rows if r["status"] == "incorrect"]
    assert set(statuses(store, inc_ids).values()) == {"incorrect"}  # verified incorrect, not merely unverified
    # same problems as without the knob; each incorrect trace is from the problem it replaces, of matched length
    assert [r["problem_id"] for r in rows] == [r["problem_id"] for r in base]
    before = {r["problem_id"]: r for r in base}
    for r in rows:
        if r["status"] == "incorrect":
            b = before[r["problem_id"]]
            assert 1 / 1.5 < r["completion_tokens"] / b["completion_tokens"] < 1.5
    assert manifest["incorrect"] == {"requested": 15, "replaced": 15, "same_length_bucket": 15}


def test_sweep_writes_one_dataset_per_value_on_the_same_questions(store, tmp_path):
    r = recipe(size=24, selection={"require_incorrect": True}, sweep={"quality.incorrect_fraction": [0, 0.25, 1]})
    manifests = mix_recipe(r, store, tmp_path / "sweep")
    assert [m["name"] for m in manifests] == ["t-incorrect_fraction=0", "t-incorrect_fraction=0.25", "t-incorrect_fraction=1"]
    shares, problem_sets = [], []
    for point in ("incorrect_fraction=0", "incorrect_fraction=0.25", "incorrect_fraction=1"):
        rows = pq.read_table(tmp_path / "sweep" / point / "data" / "train-00000-of-00001.parquet").to_pylist()
        shares.append(sum(x["status"] == "incorrect" for x in rows) / len(rows))
        problem_sets.append([x["problem_id"] for x in rows])
    assert shares == [0, 0.25, 1]
    assert problem_sets[0] == problem_sets[1] == problem_sets[2]


def test_incorrect_fraction_without_enough_incorrect_traces_is_a_clear_error(store, tmp_path):
    src = [{"name": "cd", "where": "source = 'countdown'"}, {"name": "r1", "where": "model ILIKE '%deepseek-r1%'"}]
    with pytest.raises(ConfigError, match=r"needs 15 of 20 rows .* only 10 do"):
        run(store, tmp_path / "o", sources=src, quality={"incorrect_fraction": 0.75})


def test_strip_thinking_keeps_the_same_traces_without_thinking(store, tmp_path):
    _, cot = run(store, tmp_path / "cot", filters={"think_closed": True})
    _, nocot = run(store, tmp_path / "nocot", filters={"think_closed": True}, quality={"strip_thinking": True})
    assert [r["sample_id"] for r in cot] == [r["sample_id"] for r in nocot]
    stored = texts(store, [r["sample_id"] for r in nocot])
    for r in nocot:
        resp = r["messages"][-1]["content"]
        assert "<think>" not in resp and "</think>" not in resp and "\\boxed{" in resp
        assert resp == stored[r["sample_id"]].split("</think>")[-1].strip()
        assert r["transform"] == "strip_thinking" and r["completion_tokens"] is None
    assert strip_thinking("<think>never closes") is None and strip_thinking("no tags") == "no tags"


def test_truncate_fraction_cuts_that_share_of_responses(store, tmp_path):
    _, full = run(store, tmp_path / "full")
    _, rows = run(store, tmp_path / "cut", quality={"truncate_fraction": 0.25, "truncate_keep": 0.4})
    cut = [r for r in rows if r["transform"] == "truncated"]
    assert len(cut) == 5
    before = {r["sample_id"]: r["messages"][-1]["content"] for r in full}
    for r in cut:
        orig, resp = before[r["sample_id"]], r["messages"][-1]["content"]
        assert orig.startswith(resp) and len(resp) <= 0.4 * len(orig) and "</think>" not in resp


def test_reference_solution_uses_the_short_solution_or_the_gold_answer(store, tmp_path):
    _, cot = run(store, tmp_path / "cot")
    manifest, rows = run(store, tmp_path / "ref", quality={"reference_solution": True, "reference_fallback": "boxed_answer"})
    assert [r["problem_id"] for r in rows] == [r["problem_id"] for r in cot]  # same questions
    refs = {p.id: p.reference for p in store.problems("split = 'train'")}
    assert {r["status"] for r in rows} == {"reference"} and all(r["sample_id"] is None for r in rows)
    kinds = set()
    for r in rows:
        ref, resp = refs[r["problem_id"]], r["messages"][-1]["content"]
        if isinstance(ref, dict):
            assert resp == ref["solution"]
            kinds.add("solution")
        else:
            assert resp == f"The final answer is $\\boxed{{{ref}}}$."
            kinds.add("answer")
        assert r["transform"] == ("reference_solution" if isinstance(ref, dict) else "reference_answer")
    assert kinds == {"solution", "answer"}
    ref_facts = manifest["reference"]
    assert ref_facts["solutions"] + ref_facts["boxed_answers"] == 20 and ref_facts["boxed_answers"] > 0
    assert f"{ref_facts['boxed_answers']} boxed gold answers standing in" in (tmp_path / "ref" / "README.md").read_text()
    # without the explicit fallback, problems lacking a solution are dropped and counted, never answered silently
    strict = build.build(store, recipe(size=5, quality={"reference_solution": True}))
    assert {r["transform"] for r in strict.rows} == {"reference_solution"}
    assert strict.dropped["no reference solution"] > 0


def test_selection_modes(store, tmp_path):
    _, short = run(store, tmp_path / "s", selection={"per_problem": "shortest_correct"})
    _, long = run(store, tmp_path / "l", selection={"per_problem": "longest_correct"})
    longest = {r["problem_id"]: r["completion_tokens"] for r in long}
    assert [r["problem_id"] for r in short] == list(longest)
    pairs = [(r["completion_tokens"], longest[r["problem_id"]]) for r in short]
    assert all(a <= b for a, b in pairs) and sum(a < b for a, b in pairs) >= 15  # planted problems have one trace
    _, every = run(store, tmp_path / "a", size=20, selection={"per_problem": "all_correct"})
    per_problem = {}
    for r in every:
        per_problem[r["problem_id"]] = per_problem.get(r["problem_id"], 0) + 1
    assert set(per_problem.values()) <= {1, 2} and sum(per_problem.values()) == 20 and max(per_problem.values()) == 2
    _, anyrows = run(store, tmp_path / "any", size=1000, allow_smaller=True, filters={"no_truncation": False},
                     selection={"per_problem": "any"}, decontaminate={"enabled": False}, dedup={"near": False, "exact": False})
    assert {"correct", "incorrect", "no_answer"} <= {r["status"] for r in anyrows}


def test_feature_filters(store, tmp_path):
    _, rows = run(store, tmp_path / "o", size=1000, allow_smaller=True, selection={"per_problem": "any"},
                  filters={"no_truncation": True, "has_answer": True, "think_closed": True, "max_tokens": 300})
    assert rows and all(r["completion_tokens"] <= 300 for r in rows)
    assert all("</think>" in r["messages"][-1]["content"] and "\\boxed{" in r["messages"][-1]["content"] for r in rows)
    assert "no_answer" not in {r["status"] for r in rows}


def test_planted_contamination_is_dropped_and_reported(store, tmp_path):
    everything = dict(size=1000, allow_smaller=True)
    manifest, rows = run(store, tmp_path / "drop", **everything)
    planted = {p.id: p.metadata.get("planted") for p in store.problems("split = 'train'")}
    kept = {planted[r["problem_id"]] for r in rows}
    assert "leaked-prompt" not in kept and "leaked-trace" not in kept
    assert manifest["decontamination"]["hits"] == {"aime24": {"trace": 1}, "math500": {"prompt": 1}}
    assert manifest["decontamination"]["eval_problems"] == 3
    assert manifest["dropped"]["contaminated"] == 2
    card = (tmp_path / "drop" / "README.md").read_text()
    assert "| aime24 | 0 | 1 |" in card and "| math500 | 1 | 0 |" in card
    # report-only keeps them and still counts them; checking prompts only misses the quoted trace
    reported = build.build(store, recipe(decontaminate={"action": "report"}, **everything))
    assert {"leaked-prompt", "leaked-trace"} <= {planted[r["problem_id"]] for r in reported.rows}
    assert reported.contamination == manifest["decontamination"]["hits"]
    prompts_only = build.build(store, recipe(decontaminate={"check": ["prompt"]}, **everything))
    assert prompts_only.contamination == {"math500": {"prompt": 1}}
    evals = {p.id for p in store.problems("split = 'eval'")}
    assert not any(r["problem_id"] in evals for r in reported.rows)


def test_exact_and_near_duplicate_prompts_are_dropped(store, tmp_path):
    everything = dict(size=1000, allow_smaller=True, sources=[{"name": "all", "where": "domain = 'math'"}])
    manifest, rows = run(store, tmp_path / "dedup", **everything)
    prompts = [r["messages"][0]["content"] for r in rows]
    assert len(prompts) == len(set(prompts))
    assert manifest["dropped"]["duplicate prompt (exact)"] == 1 and manifest["dropped"]["duplicate prompt (near)"] == 1
    m2, rows2 = run(store, tmp_path / "nodedup", dedup={"exact": False, "near": False}, **everything)
    assert len(rows2) == len(rows) + 2


def test_card_and_manifest_record_provenance(store, tmp_path):
    manifest, rows = run(store, tmp_path / "o", quality={"incorrect_fraction": 0.25})
    card = (tmp_path / "o" / "README.md").read_text()
    r = recipe(quality={"incorrect_fraction": 0.25})
    snap = store.snapshot()
    for needle in (r.hash(), snap["id"], f"problems {snap['problems']}", "| math | 1.0 | 20 |", "## Composition",
                   "| qwen | openr1-math | incorrect | incorrect | 5 |", "## Token statistics", "completion_tokens (counted by the generator)",
                   "## Decontamination", "8-gram overlap of prompt, trace with 3 eval-split problems", "incorrect_fraction: 0.25"):
        assert needle in card, needle
    for name, meta in manifest["files"].items():
        assert hashlib.sha256((tmp_path / "o" / name).read_bytes()).hexdigest() == meta["sha256"]
    assert manifest["recipe"]["quality"]["incorrect_fraction"] == 0.25 and manifest["store"] == snap
    assert sum(c["rows"] for c in manifest["composition"]) == 20
    import datasets

    ds = datasets.load_from_disk(str(tmp_path / "o" / "dataset"))
    assert ds.to_list() == rows


# recipes whose problems the fixture store does not hold, and the test that builds them on a store that does
OWN_STORE = {"chain-sum-toy": "tests/test_demo.py (the demo's chain-sum store)"}


def test_every_shipped_recipe_runs_on_the_fixture_store(store, tmp_path):
    for path in list_recipes():
        if path.stem in OWN_STORE:
            continue
        data = load_recipe(path).model_dump(mode="json")
        data["size"] = 8
        r = validate_recipe(data, origin=path.name)
        points = [p for _, p in r.expand_sweep()]
        for point in points[:1] + points[-1:] if len(points) > 1 else points:  # writing is tested above
            assert len(build.build(store, point).rows) == 8, (path.name, point.name)
    for name in ("math-nocot", "countdown-cot"):
        data = load_recipe(ROOT / "recipes" / f"{name}.yaml").model_dump(mode="json")
        mix_recipe(validate_recipe({**data, "size": 8}), store, tmp_path / name)
    nocot = pq.read_table(tmp_path / "math-nocot" / "data" / "train-00000-of-00001.parquet").to_pylist()
    assert len(nocot) == 8 and not any("<think>" in r["messages"][-1]["content"] for r in nocot)
    cd = pq.read_table(tmp_path / "countdown-cot" / "data" / "train-00000-of-00001.parquet").to_pylist()
    assert {r["source"] for r in cd} == {"countdown"}


def test_bad_input(store, tmp_path):
    with pytest.raises(ConfigError) as e:
        run(store, tmp_path / "o", sources=[{"name": "bad", "where": "nosuchcolumn = 1"}])
    assert "sources.bad.where" in e.value.message and "nosuchcolumn" in e.value.message
    with pytest.raises(ConfigError, match=r"source qwen: \d+ eligible rows of 5000 requested"):
        run(store, tmp_path / "o", size=5000)
    m, rows = run(store, tmp_path / "small", size=5000, allow_smaller=True)
    assert m["rows"] == len(rows) < 5000
    run(store, tmp_path / "exists")
    [again] = mix_recipe(recipe(), store, tmp_path / "exists")  # the same recipe on the same store: nothing to do
    assert again["skipped"] is True
    with pytest.raises(InputError, match="already exists"):
        run(store, tmp_path / "exists", seed=99)
    mix_recipe(recipe(), store, tmp_path / "exists", overwrite=True)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not a curate mixture"):
        mix_recipe(recipe(), store, tmp_path / "foreign", overwrite=True)
    assert (tmp_path / "foreign" / "keep.txt").exists()


def test_store_without_verdicts(tmp_path):
    bare = fixture_store.build(tmp_path / "bare", with_verdicts=False)
    with pytest.raises(StoreError, match="no verdicts"):
        run(bare, tmp_path / "o")
    _, rows = run(bare, tmp_path / "any", selection={"per_problem": "any"})
    assert len(rows) == 20 and {r["status"] for r in rows} == {None}


def test_cli_mix_sweep_json_and_errors(store, tmp_path, cli):
    rfile = tmp_path / "r.yaml"
    rfile.write_text(f"name: small\nseed: 1\nsize: 6\nsources:\n  - name: q\n    where: \"{QWEN_MATH}\"\n"
                     "selection: {require_incorrect: true}\n")
    res = cli("mix", str(rfile), "--store", str(store.path), "--out", str(tmp_path / "o"),
              "--sweep", "quality.incorrect_fraction=0,0.5", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert [r["name"] for r in out] == ["small-incorrect_fraction=0", "small-incorrect_fraction=0.5"]
    assert out[1]["rows_incorrect"] == 3 and out[1]["rows_correct"] == 3
    # another process (another PYTHONHASHSEED) writes the very same bytes
    again = load_recipe(rfile, overrides={"quality.incorrect_fraction": [0, 0.5]})
    mix_recipe(again, store, tmp_path / "again")
    assert file_hashes(tmp_path / "o") == file_hashes(tmp_path / "again")
    rfile.write_text("name: small\nsize: 6\nsources:\n  - name: q\n    colour: red\n")
    res = cli("recipes", "validate", str(rfile), "math-cot")
    assert res.returncode != 0 and "r.yaml:5: sources.0.colour: unknown key" in res.stdout + res.stderr
    assert "ok" in res.stdout and "Traceback" not in res.stderr


def test_predicates_may_read_the_trace_text(store, tmp_path):
    """Choosing runs on `traces` minus its text when it can; a predicate on `text` must give the same picks."""
    plain = build.build(store, recipe(size=30, quality={"incorrect_fraction": 0.5}))
    on_text = build.build(store, recipe(size=30, quality={"incorrect_fraction": 0.5},
                                        sources=[{"name": "qwen", "where": QWEN_MATH + " AND text LIKE '%'"}]))
    assert [r["sample_id"] for r in plain.rows] == [r["sample_id"] for r in on_text.rows]
    planted = {p.id: p.metadata.get("planted") for p in store.problems("split = 'train'")}
    only = build.build(store, recipe(size=5, allow_smaller=True,
                                     sources=[{"name": "q", "where": QWEN_MATH + " AND text LIKE '%\\boxed{%' AND text LIKE '% near%'"}]))
    assert [planted[r["problem_id"]] for r in only.rows] == ["near-dup"]


def test_sweep_checks_every_point_before_writing_and_a_rerun_skips_built_points(store, tmp_path):
    """A sweep used to stop at 0.75 after writing three folders, and a rerun was then refused."""
    src = [{"name": "cd", "where": "source = 'countdown'"}, {"name": "r1", "where": "model ILIKE '%deepseek-r1%'"}]
    bad = recipe(sources=src, sweep={"quality.incorrect_fraction": [0, 0.25, 0.5, 0.75]})
    with pytest.raises(ConfigError, match=r"incorrect_fraction=0.75: incorrect_fraction 0.75 needs 15 of 20 rows .* nothing was written"):
        mix_recipe(bad, store, tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()
    good = recipe(sources=src, sweep={"quality.incorrect_fraction": [0, 0.25, 0.5]})
    first = mix_recipe(good, store, tmp_path / "sweep")
    assert [m.get("skipped", False) for m in first] == [False, False, False]
    before = file_hashes(tmp_path / "sweep")
    again = mix_recipe(good, store, tmp_path / "sweep")
    assert [m["skipped"] for m in again] == [True, True, True]
    assert [m["recipe_hash"] for m in again] == [m["recipe_hash"] for m in first]
    assert file_hashes(tmp_path / "sweep") == before
    # a longer sweep builds only its new point; a changed recipe is refused rather than mixed with old points
    more = mix_recipe(recipe(sources=src, sweep={"quality.incorrect_fraction": [0, 0.25, 0.5, 0.4]}), store, tmp_path / "sweep")
    assert [m.get("skipped", False) for m in more] == [True, True, True, False]
    with pytest.raises(InputError, match="already exists"):
        mix_recipe(recipe(sources=src, seed=3, sweep={"quality.incorrect_fraction": [0, 0.25]}), store, tmp_path / "sweep")


def test_cli_mix_set_overrides_a_recipe_field(store, tmp_path, cli):
    res = cli("mix", "math-cot", "--store", str(store.path), "--out", str(tmp_path / "o"), "--set", "size=6",
              "--set", "sources.0.where=domain = 'math'", "--set", "decontaminate.enabled=false", "--json")
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["rows"] == 6 and manifest["recipe"]["sources"][0]["where"] == "domain = 'math'"
    assert manifest["recipe"]["decontaminate"]["enabled"] is False and manifest["recipe"]["name"] == "math-cot"
    res = cli("mix", "math-cot", "--store", str(store.path), "--out", str(tmp_path / "p"), "--set", "quality.colour=red")
    assert res.returncode != 0 and "quality.colour: unknown recipe field" in res.stderr


def test_token_estimates_are_marked_as_estimates(tmp_path):
    """A pool without token counts showed chars/4 figures as "completion_tokens (stored)"."""
    from curate.records import Problem, Sample, Verdict
    from curate.store import TraceStore

    st = TraceStore(tmp_path / "store")
    problems, samples, verdicts = [], [], []
    for i in range(6):
        p = Problem(source="pool", domain="math", prompt=f"What is {i} plus {i + 2} when counted by a careful clerk?", reference=str(2 * i + 2))
        s = Sample(problem_id=p.id, text=f"<think>add</think> \\boxed{{{2 * i + 2}}}" + " pad" * (10 * i), backend="import",
                   model="pool", finish_reason="stop", completion_tokens=None if i % 2 else 50 + i)
        problems.append(p), samples.append(s)
        verdicts.append(Verdict(status="correct", verifier="math", version="1", score=1.0, answer=str(2 * i + 2), sample_id=s.id))
    st.add_problems(problems), st.add_samples(samples), st.add_verdicts(verdicts)
    r = validate_recipe({"name": "est", "size": 6, "sources": [{"name": "pool", "where": "true"}], "decontaminate": {"enabled": False}})
    [manifest] = mix_recipe(r, st, tmp_path / "o")
    rows = pq.read_table(tmp_path / "o" / "data" / "train-00000-of-00001.parquet").to_pylist()
    stored = {s.id: s.completion_tokens for s in samples}
    for row in rows:
        assert row["completion_tokens_estimated"] is (stored[row["sample_id"]] is None)
        if stored[row["sample_id"]] is not None:
            assert row["completion_tokens"] == stored[row["sample_id"]]
    assert manifest["tokens"]["completion_tokens"]["n"] == 3 and manifest["tokens"]["completion_tokens_estimated"]["n"] == 3
    card = (tmp_path / "o" / "README.md").read_text()
    assert "completion_tokens (estimated: chars/4, no count stored) | 3 |" in card and "(stored)" not in card


def test_mix_reports_progress(store, tmp_path):
    said: list[str] = []
    mix_recipe(recipe(sweep={"quality.truncate_fraction": [0, 0.5]}), store, tmp_path / "p", progress=said.append)
    assert any("selecting" in m for m in said) and any("source qwen: 20/20 rows" in m for m in said)
    assert sum("writing" in m for m in said) == 2
    assert sum("selecting rows" in m for m in said) == 1  # both points share one selection
