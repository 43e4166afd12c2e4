"""End-to-end training through `curate train` (real torchrun, gloo, CPU, a tiny model): exact resume after a
kill, 2-process FSDP2 == 1 process, HF checkpoints that reload with identical logits, and bad input
rejected with one clear line before any process group starts."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "train"))
import tiny  # noqa: E402

from tests.conftest import run_cli  # noqa: E402

ENV = {"OMP_NUM_THREADS": "1"}  # 2 shared cores: threads only fight each other


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    tiny.make_tokenizer(root / "tok")
    tiny.write_jsonl(root / "data.jsonl", tiny.rows(48, seed=11))
    return root


def _config(setup: Path, name: str, **sections) -> Path:
    return tiny.write_config(setup / f"{name}.yaml", setup / "tok", setup / "data.jsonl", setup / name, **sections)


def _train(cfg: Path, *args: str, env: dict | None = None):
    return run_cli("train", str(cfg), *args, env={**ENV, **(env or {})}, timeout=300)


def _metrics(out: Path) -> list[dict]:
    return [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]


def _train_here(cfg: Path, *sets: str, resume: bool = False) -> None:
    """The same launcher in this process (a 1-device run needs no torchrun): saves an interpreter start-up."""
    from curate.train import train_from_config

    torch.set_num_threads(1)
    train_from_config(cfg, list(sets), resume=resume, echo=lambda *a: None)


@pytest.fixture(scope="module")
def reference(setup):
    """One uninterrupted 1-process run: 6 steps, unpacked, 2 sequences per micro-batch."""
    _train_here(_config(setup, "ref"))
    return setup / "ref"


def test_run_writes_metrics_checkpoints_and_state(reference):
    rows = _metrics(reference)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0]["lr"] == 0.0 and rows[2]["lr"] == pytest.approx(1e-3)  # warmup: 2 steps from 0, then cosine
    assert rows[-1]["loss"] < rows[0]["loss"]
    for key in ("grad_norm", "tokens_per_s", "tokens_seen", "response_tokens", "mem_rss_peak_gib"):
        assert key in rows[0]
    assert rows[-1]["tokens_seen"] == sum(r["tokens"] for r in rows)
    for s in (2, 4, 6):
        ck = reference / "checkpoints" / f"step-{s:06d}"
        assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"} <= {p.name for p in ck.iterdir()}
    assert [p.name for p in (reference / "state").iterdir()] == ["step-000006"]  # keep_states: 1
    report = json.loads((reference / "data_report.json").read_text())
    assert report["kept"] == 48 and report["steps_per_epoch"] == 6


def test_resume_after_kill_is_exact(setup, reference):
    cfg = _config(setup, "killed")
    r = _train(cfg, env={"CURATE_TRAIN_KILL_AT_STEP": "3"})
    assert r.returncode == 17  # the hook's os._exit: no cleanup, like a kill
    assert len(_metrics(setup / "killed")) == 3  # step 3 ran, but the latest state is step 2
    _train_here(cfg, resume=True)
    got, ref = _metrics(setup / "killed"), _metrics(reference)
    assert [g["step"] for g in got] == [1, 2, 3, 4, 5, 6]  # step 3 re-run once, its stale line dropped
    for g, e in zip(got, ref):
        assert abs(g["loss"] - e["loss"]) <= 1e-6, (g["step"], g["loss"], e["loss"])
        assert abs(g["grad_norm"] - e["grad_norm"]) <= 1e-6
        assert g["lr"] == e["lr"] and g["tokens_seen"] == e["tokens_seen"]


def test_two_processes_match_one(setup, reference):
    """2 ranks, packed, different micro-batching: the global-batch token mean keeps the losses the same."""
    cfg = _config(setup, "two", data={"packing": True, "micro_batch_tokens": 256}, launch={"nproc_per_node": 2},
                  checkpoint={"every": None, "steps": [3]})
    r = _train(cfg)
    assert r.returncode == 0, r.stdout + r.stderr
    got, ref = _metrics(setup / "two"), _metrics(reference)
    assert len(got) == len(ref) == 6
    for g, e in zip(got, ref):
        assert g["loss"] == pytest.approx(e["loss"], rel=1e-5, abs=1e-6), g["step"]
        assert g["grad_norm"] == pytest.approx(e["grad_norm"], rel=1e-4)
    assert sorted(p.name for p in (setup / "two" / "checkpoints").iterdir()) == ["step-000003", "step-000006"]


def test_hf_checkpoint_reloads_with_identical_logits(reference):
    """The HF export at step 6 holds exactly the weights of the resumable state at step 6."""
    import torch.distributed.checkpoint as dcp
    from transformers import AutoModelForCausalLM

    ck = reference / "checkpoints" / "step-000006"
    assert "sdpa_varlen" not in (ck / "config.json").read_text()  # vLLM/lm-eval would not know our attention
    hf = AutoModelForCausalLM.from_pretrained(ck, dtype=torch.float32)
    from_state = AutoModelForCausalLM.from_config(hf.config, dtype=torch.float32)
    sd = {f"lm.{k}": torch.zeros_like(v) for k, v in from_state.state_dict().items()}
    if hf.config.tie_word_embeddings:
        sd.pop("lm.lm_head.weight")
    dcp.load({"model": sd}, checkpoint_id=str(reference / "state" / "step-000006"))
    from_state.load_state_dict({k.removeprefix("lm."): v for k, v in sd.items()}, strict=False)
    from_state.tie_weights()
    ids = torch.randint(0, hf.config.vocab_size, (2, 17))
    with torch.no_grad():
        a, b = hf(ids).logits, from_state(ids).logits
    assert torch.equal(a, b)
    init = AutoModelForCausalLM.from_pretrained(reference / "checkpoints" / "step-000002", dtype=torch.float32)
    with torch.no_grad():
        assert not torch.equal(init(ids).logits, a)  # checkpoints differ from step to step


# ---------------------------------------------------------------- bad input: one line, no process group


def _one_error(r, pattern: str) -> None:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and "torch.distributed" not in r.stderr, r.stderr
    assert r.stderr.count("error:") == 1 and pattern in r.stderr, r.stderr


def test_existing_output_dir_is_refused(setup, reference):
    _one_error(_train(setup / "ref.yaml"), "already exists and is not empty")


def test_resume_with_a_different_config_is_refused(setup, reference):
    _one_error(_train(setup / "ref.yaml", "--resume", "--set", "train.lr=0.5"), "train.lr: 0.001 -> 0.5")


def test_missing_model_path_and_bad_dataset(setup, tmp_path):
    cfg = tiny.write_config(tmp_path / "m.yaml", setup / "tok", setup / "data.jsonl", tmp_path / "o1",
                            model={"name_or_path": "./no/such/model"})
    _one_error(_train(cfg), "model.name_or_path: './no/such/model' does not exist")
    (tmp_path / "nomsg.jsonl").write_text('{"text": "hello"}\n')
    cfg = tiny.write_config(tmp_path / "d.yaml", setup / "tok", tmp_path / "nomsg.jsonl", tmp_path / "o2")
    _one_error(_train(cfg), "nomsg.jsonl:1: no 'messages' field")
    _one_error(_train(cfg, "--set", "train.bogus=1"), "train.bogus: Extra inputs are not permitted")
    assert not (tmp_path / "o2").exists()
