"""Checkpoint lineage without torch: the facts read from a `curate mix` manifest, a checkpoint folder that
counts as complete only with its marker, config.json and weights, and a run's lineage with its checkpoints.
A real run's markers are checked in tests/test_train_run.py."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from curate.train.layout import MARKER, checkpoint_info, lineage_for, mixture_facts, run_lineage, write_atomic

import tiny  # noqa: E402


def _mix(folder: Path) -> Path:
    """The parts of a `curate mix` output that lineage reads."""
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "train-00000-of-00001.parquet").write_bytes(b"rows")
    manifest = {"recipe_hash": "r" * 64, "store": {"id": "snap123", "problems": 3},
                "files": {"data/train-00000-of-00001.parquet": {"sha256": "bb", "bytes": 4},
                          "README.md": {"sha256": "aa", "bytes": 9}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_mixture_facts_from_the_manifest(tmp_path):
    mix = _mix(tmp_path / "mix")
    want = {"mixture_fingerprint": hashlib.sha256(b"aabb").hexdigest()[:16], "recipe_hash": "r" * 64,
            "store_snapshot": "snap123"}
    for path in (mix, mix / "data", mix / "data" / "train-00000-of-00001.parquet"):  # every way data.path points in
        assert mixture_facts(path) == want, path
    (tmp_path / "plain.jsonl").write_text("{}\n")
    assert mixture_facts(tmp_path / "plain.jsonl") == {"mixture_fingerprint": None, "recipe_hash": None, "store_snapshot": None}


def test_lineage_ids_are_stable_and_follow_the_config(tmp_path):
    from curate.train.config import load_config

    mix = _mix(tmp_path / "mix")
    cfg_path = tiny.write_config(tmp_path / "c.yaml", tmp_path / "tok", mix / "data", tmp_path / "out")
    a, b = lineage_for(load_config(cfg_path)), lineage_for(load_config(cfg_path))
    assert a == b and a["recipe_hash"] == "r" * 64 and a["store_snapshot"] == "snap123" and a["base_model"] == "debug"
    assert a["data_path"] == str((mix / "data").resolve())
    other = lineage_for(load_config(cfg_path, ["train.lr=0.5"]))
    assert other["config_hash"] != a["config_hash"] and other["run_id"] != a["run_id"]
    moved = lineage_for(load_config(cfg_path, [f"output_dir={tmp_path / 'elsewhere'}"]))
    assert moved["config_hash"] == a["config_hash"] and moved["run_id"] != a["run_id"]
    same = lineage_for(load_config(cfg_path, ["logging.progress=true"]))  # not part of the fingerprint
    assert same == a


def _checkpoint(folder: Path, step: int, marker: bool = True, weights: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    if weights:
        (folder / "model.safetensors").write_bytes(b"w")
    if marker:
        (folder / MARKER).write_text(json.dumps({"step": step, "run_id": "abc"}))
    return folder


def test_a_checkpoint_is_complete_only_with_marker_config_and_weights(tmp_path):
    assert checkpoint_info(_checkpoint(tmp_path / "step-000002", 2)) == {"step": 2, "run_id": "abc",
                                                                         "path": str(tmp_path / "step-000002")}
    assert checkpoint_info(_checkpoint(tmp_path / "a", 2, marker=False)) is None  # written before the marker existed
    assert checkpoint_info(_checkpoint(tmp_path / "b", 2, weights=False)) is None
    sharded = _checkpoint(tmp_path / "c", 4, weights=False)
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"x": "model-00001-of-00002.safetensors",
                                                                                     "y": "model-00002-of-00002.safetensors"}}))
    (sharded / "model-00001-of-00002.safetensors").write_bytes(b"w")
    assert checkpoint_info(sharded) is None  # a shard is missing
    (sharded / "model-00002-of-00002.safetensors").write_bytes(b"w")
    assert checkpoint_info(sharded)["step"] == 4


def test_run_lineage_lists_complete_checkpoints_in_step_order(tmp_path):
    out = tmp_path / "run"
    for step in (10, 2):
        _checkpoint(out / "checkpoints" / f"step-{step:06d}", step)
    _checkpoint(out / "checkpoints" / "step-000004.tmp", 4)  # a save cut short: never listed
    _checkpoint(out / "checkpoints" / "step-000006", 6, marker=False)
    write_atomic(out / "lineage.json", json.dumps({"run_id": "abc", "config_hash": "def"}))
    got = run_lineage(out)
    assert got["run_id"] == "abc" and got["output_dir"] == str(out)
    assert [c["step"] for c in got["checkpoints"]] == [2, 10]
    assert all(Path(c["path"]).is_dir() for c in got["checkpoints"])
