"""`curate import`: every preset from small fixtures, idempotency, and bad input named by row and field."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.errors import InputError
from curate.importer import import_dataset, parse_mapping
from curate.store import TraceStore

FIX = Path(__file__).parent / "fixtures" / "import"


def rows(st, sql):
    return st.query(sql).to_pylist()


def test_generic_jsonl_lists_become_several_samples(store_path):
    st = TraceStore(store_path)
    rep = import_dataset(st, str(FIX / "generic.jsonl"))
    assert (rep.rows, rep.problems, rep.samples) == (3, 3, 4)
    got = rows(st, "SELECT prompt, sample_index, text FROM traces ORDER BY prompt, sample_index")
    assert [r["sample_index"] for r in got if r["prompt"] == "Simplify 10/4."] == [0, 1]
    assert any(r["prompt"] == "Find x if 2x + 3 = 11." for r in got)  # `question` column fallback
    again = import_dataset(st, str(FIX / "generic.jsonl"))
    assert (again.problems, again.samples) == (0, 0)
    assert st.counts()["samples"] == 4


def test_pool_preset_from_parquet(store_path, tmp_path):
    recs = [json.loads(l) for l in (FIX / "pool.jsonl").read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "pool.parquet")
    st = TraceStore(store_path)
    rep = import_dataset(st, str(tmp_path / "pool.parquet"), preset="pool")
    assert (rep.problems, rep.samples) == (2, 3)
    got = rows(st, "SELECT prompt, reference, model, sample_index, teacher_logprob, params FROM traces ORDER BY prompt, sample_index")
    assert got[0]["prompt"] == "Compute 3 + 5."  # the study's suffix is stripped; mixing re-applies it
    assert [r["sample_index"] for r in got[:2]] == [0, 1]
    assert got[0]["model"] == "Qwen/Qwen3-32B" and json.loads(got[0]["params"])["temperature"] == 0.6
    assert got[0]["teacher_logprob"] == pytest.approx(-0.2)
    assert json.loads(got[2]["reference"]) == "2"


def test_openr1_correctness_lists_become_verdicts(store_path):
    st = TraceStore(store_path)
    rep = import_dataset(st, str(FIX / "openr1.jsonl"), preset="openr1_math")
    assert (rep.problems, rep.samples, rep.verdicts) == (2, 3, 3)
    got = rows(st, "SELECT text, status, verifier, finish_reason, truncated, metadata FROM traces ORDER BY text")
    by_text = {r["text"][:20]: r for r in got}
    wrong = next(r for r in got if "Guess 12" in r["text"])
    assert wrong["status"] == "incorrect" and wrong["verifier"] == "import:math_verify"
    assert wrong["finish_reason"] == "length" and wrong["truncated"] is True
    assert json.loads(got[0]["metadata"])["solution"]
    assert len(by_text) == 3


def test_sharegpt_and_numina(store_path):
    st = TraceStore(store_path)
    rep = import_dataset(st, str(FIX / "sharegpt.jsonl"), preset="sharegpt")
    assert (rep.problems, rep.samples) == (2, 2)
    assert {r["prompt"] for r in rows(st, "SELECT prompt FROM problems")} == {"Is 91 prime?", "What is 2^10?"}
    rep = import_dataset(st, str(FIX / "numina.jsonl"), preset="numinamath", source_name="numina")
    assert (rep.problems, rep.samples) == (2, 0)
    meta = rows(st, "SELECT metadata FROM problems WHERE source = 'numina'")
    assert all("boxed" in json.loads(m["metadata"])["solution"] for m in meta)


def test_save_to_disk_directory_and_mapping(store_path, tmp_path):
    import datasets

    recs = [{"q": "1+1?", "generation": "<think>2</think>\\boxed{2}", "gold": "2"}]
    datasets.Dataset.from_list(recs).save_to_disk(str(tmp_path / "ds"))
    st = TraceStore(store_path)
    m = parse_mapping(["prompt=q", "response=generation", "answer=gold"])
    rep = import_dataset(st, str(tmp_path / "ds"), mapping=m, domain="math", split="eval")
    assert rep.samples == 1
    assert rows(st, "SELECT split, reference FROM problems") == [{"split": "eval", "reference": '"2"'}]


def test_mapping_to_missing_column_is_named(store_path):
    with pytest.raises(InputError, match="no column 'generation'"):
        import_dataset(TraceStore(store_path), str(FIX / "generic.jsonl"), mapping={"response": "generation"})
    with pytest.raises(InputError, match="unknown field"):
        parse_mapping(["answr=x"])


def test_malformed_line_is_named_and_earlier_rows_resume(store_path):
    st = TraceStore(store_path)
    with pytest.raises(InputError, match=r"malformed.jsonl:2: malformed JSON"):
        import_dataset(st, str(FIX / "malformed.jsonl"))


def test_non_utf8_is_named(store_path):
    with pytest.raises(InputError, match=r"non_utf8.jsonl:2: not valid UTF-8"):
        import_dataset(TraceStore(store_path), str(FIX / "non_utf8.jsonl"))


def test_empty_response_stops_or_is_skipped(store_path):
    st = TraceStore(store_path)
    with pytest.raises(InputError, match=r"row 2: field 'response': empty; rows before 2 are stored"):
        import_dataset(st, str(FIX / "empty_response.jsonl"))
    assert st.counts()["samples"] == 1  # the good row before it is stored, and a rerun skips it
    rep = import_dataset(st, str(FIX / "empty_response.jsonl"), skip_bad=True)
    assert rep.samples == 1 and len(rep.skipped) == 1 and "row 2" in rep.skipped[0]
    assert st.counts()["samples"] == 2


def test_unknown_preset_and_missing_file(store_path):
    with pytest.raises(InputError, match="unknown preset"):
        import_dataset(TraceStore(store_path), str(FIX / "generic.jsonl"), preset="alpaca")
    with pytest.raises(InputError, match="no such file"):
        import_dataset(TraceStore(store_path), "nowhere.jsonl")


def test_truncated_parquet_input_is_named(store_path, tmp_path):
    path = tmp_path / "half.parquet"
    pq.write_table(pa.table({"prompt": ["a"] * 100, "response": ["b"] * 100}), path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputError, match="half.parquet: not a readable Parquet file"):
        import_dataset(TraceStore(store_path), str(path))


def _big_jsonl(path: Path, n: int) -> Path:
    with open(path, "w") as f:
        for i in range(n):  # every third row repeats a problem, so sample indices cross chunk boundaries
            f.write(json.dumps({"prompt": f"What is {i % (n // 3 + 1)} + 1?", "response": [f"r{i}a", f"r{i}b"],
                                "answer": str(i)}) + "\n")
    return path


class _Stop(Exception):
    pass


def test_interrupted_import_resumes_after_committed_chunks(tmp_path):
    src = _big_jsonl(tmp_path / "big.jsonl", 90)
    clean = TraceStore(tmp_path / "clean")
    import_dataset(clean, str(src), chunk_rows=20)
    st = TraceStore(tmp_path / "store")
    flushes = []

    def stop_after_two(rep):
        flushes.append(rep.rows)
        if len(flushes) == 2:
            raise _Stop  # as if killed right after the second chunk committed

    with pytest.raises(_Stop):
        import_dataset(st, str(src), chunk_rows=20, progress=stop_after_two)
    committed = flushes[-1]
    rep = import_dataset(st, str(src), chunk_rows=20)
    assert rep.resumed_after == committed and rep.rows == 90 - committed  # committed rows are not read again
    q = "SELECT id, problem_id, sample_index, text FROM traces ORDER BY id"
    assert rows(st, q) == rows(clean, q)
    again = import_dataset(st, str(src), chunk_rows=20)
    assert (again.rows, again.samples, again.resumed_after) == (0, 0, 90)


def test_changed_source_is_read_in_full(tmp_path):
    src = _big_jsonl(tmp_path / "data.jsonl", 30)
    st = TraceStore(tmp_path / "store")
    import_dataset(st, str(src), chunk_rows=10)
    with open(src, "a") as f:
        f.write(json.dumps({"prompt": "A new question?", "response": "yes", "answer": "1"}) + "\n")
    rep = import_dataset(st, str(src), chunk_rows=10)
    assert (rep.resumed_after, rep.rows, rep.samples) == (0, 31, 1)


def test_skip_bad_skips_malformed_json_lines(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"prompt": "Q1?", "response": "a", "answer": "1"}\n{"prompt": "Q2?", "resp\n'
                   '[1, 2]\n{"prompt": "Q3?", "response": "c", "answer": "3"}\n')
    st = TraceStore(tmp_path / "store")
    with pytest.raises(InputError, match=r"bad.jsonl:2: malformed JSON.*rows before it are stored"):
        import_dataset(st, str(src))
    assert st.counts()["samples"] == 1
    rep = import_dataset(st, str(src), skip_bad=True)
    assert rep.samples == 1 and st.counts()["samples"] == 2
    assert [s.split(": ", 1)[0].rsplit("/", 1)[-1] for s in rep.skipped] == ["bad.jsonl:2", "bad.jsonl:3"]


def test_cli_skip_bad_malformed_json_exits_zero(tmp_path, cli):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"prompt": "Q1?", "response": "a"}\n{oops\n{"prompt": "Q3?", "response": "c"}\n')
    r = cli("import", str(src), "--store", str(tmp_path / "s"), "--skip-bad")
    assert r.returncode == 0, r.stderr
    assert "bad.jsonl:2: malformed JSON" in r.stderr and "2 new samples" in r.stdout
