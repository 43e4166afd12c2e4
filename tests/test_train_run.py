"""End-to-end training through `curate train` (real torchrun, gloo, CPU, a tiny model): exact resume after a
kill (between steps, inside an HF export, inside a state save), 2-process FSDP2 == 1 process, HF checkpoints
that reload with identical logits and carry their lineage, the last step always exported, the `--json`
summary, and bad input (a checkpoint past the last step, a damaged config.yaml on resume) rejected with one
clear line before any process group starts. Killing the launcher: tests/test_train_shutdown.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import tiny  # noqa: E402

from tests.helpers import run_cli  # noqa: E402

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


def _train_here(cfg: Path, *sets: str, resume: bool = False, echo=lambda *a: None) -> dict:
    """The same launcher in this process (a 1-device run needs no torchrun): saves an interpreter start-up."""
    from curate.train import train_from_config

    torch.set_num_threads(1)
    return train_from_config(cfg, list(sets), resume=resume, echo=echo)


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


@pytest.mark.parametrize("hook, lines", [
    ({"CURATE_TRAIN_KILL_AT_STEP": "3"}, 3),  # between steps: step 3 ran, the latest state is step 2
    ({"CURATE_TRAIN_KILL_IN_SAVE": "hf:4"}, 4),  # inside the step-4 HF export, before its rename
    ({"CURATE_TRAIN_KILL_IN_SAVE": "state:4"}, 4),  # inside the step-4 state save, before COMPLETE
], ids=["after-step", "in-hf-export", "in-state-save"])
def test_resume_after_kill_is_exact(setup, reference, hook, lines):
    name = "killed-" + next(iter(hook.values())).replace(":", "")
    cfg = _config(setup, name)
    out = setup / name
    r = _train(cfg, env=hook)
    assert r.returncode == 17  # the hook's os._exit: no cleanup, like a kill
    assert len(_metrics(out)) == lines
    half = out / "checkpoints" / "step-000004.tmp"
    assert half.exists() == ("hf:4" in hook.values())  # a cut export never shows under its final name
    if half.exists():  # this resume goes through the CLI and prints its summary as JSON
        r = _train(cfg, "--resume", "--json")
        assert r.returncode == 0, r.stderr
        summary = json.loads(r.stdout)
        assert summary["resumed_from"] == 2 and summary["steps"] == 6 and "resuming from step 2 of 6" in r.stderr
        assert [c["step"] for c in summary["checkpoints"]] == [2, 4, 6]
        assert all(Path(c["path"]).is_dir() for c in summary["checkpoints"])
        assert summary["data"]["kept"] == 48 and summary["run_id"] == summary["checkpoints"][0]["run_id"]
    else:
        _train_here(cfg, resume=True)
    got, ref = _metrics(out), _metrics(reference)
    assert [g["step"] for g in got] == [1, 2, 3, 4, 5, 6]  # re-run steps appear once, their stale lines dropped
    for g, e in zip(got, ref):
        assert abs(g["loss"] - e["loss"]) <= 1e-6, (g["step"], g["loss"], e["loss"])
        assert abs(g["grad_norm"] - e["grad_norm"]) <= 1e-6
        assert g["lr"] == e["lr"] and g["tokens_seen"] == e["tokens_seen"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000002", "step-000004", "step-000006"]


@pytest.mark.parametrize("hook, lines", [
    ({"CURATE_TRAIN_KILL_AT_STEP": "1"}, 1),  # before the first state (step 2)
    ({"CURATE_TRAIN_KILL_IN_SAVE": "state:2"}, 2),  # inside the first state save, before COMPLETE
], ids=["before-first-state", "in-first-state-save"])
def test_a_run_killed_before_its_first_state_resumes_from_step_0(setup, reference, hook, lines):
    name = "early-" + next(iter(hook.values())).replace(":", "")
    cfg = _config(setup, name)
    out = setup / name
    assert _train(cfg, env=hook).returncode == 17
    assert len(_metrics(out)) == lines and not list((out / "state").glob("step-*/COMPLETE"))
    again = _train(cfg)  # a plain rerun still points at --resume
    assert again.returncode == 2 and "pass --resume" in again.stderr
    r = _train(cfg, "--resume", "--json")
    assert r.returncode == 0, r.stderr
    assert "no complete state in" in r.stderr and "starting from step 0 of 6" in r.stderr
    assert json.loads(r.stdout)["resumed_from"] == 0
    got, ref = _metrics(out), _metrics(reference)
    assert [g["step"] for g in got] == [1, 2, 3, 4, 5, 6]
    for g, e in zip(got, ref):
        assert abs(g["loss"] - e["loss"]) <= 1e-6 and abs(g["grad_norm"] - e["grad_norm"]) <= 1e-6
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000002", "step-000004", "step-000006"]
    assert [p.name for p in (out / "state").iterdir()] == ["step-000006"]


def test_checkpoints_carry_their_lineage(reference):
    from curate.train.layout import checkpoint_info, run_lineage

    lineage = run_lineage(reference)
    assert [c["step"] for c in lineage["checkpoints"]] == [2, 4, 6]
    for c in lineage["checkpoints"]:
        info = checkpoint_info(c["path"])
        assert info == c
        assert info["run_id"] == lineage["run_id"] and info["config_hash"] == lineage["config_hash"]
        assert info["base_model"] == "debug" and info["data_path"].endswith("data.jsonl")
        assert info["recipe_hash"] is None and info["mixture_fingerprint"] is None  # a plain .jsonl, not a mix


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
    _one_error(_train(cfg, "--set", "train.bogus=1"), "train.bogus: unknown key")
    assert not (tmp_path / "o2").exists()


# ---------------------------------------------------------------- rows dropped: the run's length is explicit


@pytest.fixture(scope="module")
def short_data(setup):
    """44 ordinary rows + 4 too long for max_length 256: 5 steps of 8, and a tokenizer whose template
    injects a system prompt."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(setup / "tok")
    tok.chat_template = "<|im_start|>system\nYou are a helpful assistant made by Example.<|im_end|>\n" + tiny.CHAT_TEMPLATE
    tok.save_pretrained(setup / "tok-sys")
    long = tiny.rows(4, seed=5, min_words=300, max_words=300)
    tiny.write_jsonl(setup / "short.jsonl", tiny.rows(44, seed=11) + long)
    return setup / "short.jsonl"


def test_checkpoint_past_the_last_step_is_refused_before_training(setup, short_data, tmp_path):
    from curate.errors import InputError

    cfg = tiny.write_config(tmp_path / "c.yaml", setup / "tok", short_data, tmp_path / "out", checkpoint={"steps": [3, 6]})
    with pytest.raises(InputError) as e:
        _train_here(cfg)
    msg = e.value.message
    assert "checkpoint.steps: [6] beyond the run's last step 5" in msg
    assert "44 of 48 rows kept, 4 dropped (4 too long (data.max_length 256" in msg
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_short_data_run_reports_drops_and_exports_its_last_step(setup, short_data, tmp_path):
    cfg = tiny.write_config(tmp_path / "c.yaml", setup / "tok-sys", short_data, tmp_path / "out",
                            checkpoint={"steps": [], "every": None}, train={"global_batch_size": 16, "epochs": 1})
    said: list[str] = []
    result = _train_here(cfg, echo=said.append)
    text = "\n".join(said)
    assert "44 of 48 rows kept, 4 dropped (4 too long (data.max_length 256" in text
    assert "2 steps/epoch of 16 rows (12 rows per epoch left out: not a multiple of global_batch_size)" in text
    assert "the run ends at step 2" in text
    assert "the chat template injects a system prompt into the 48 rows that have none" in text
    assert "You are a helpful assistant" in text
    assert result["steps"] == 2 and [c["step"] for c in result["checkpoints"]] == [2]  # the last step, always
    assert (Path(result["checkpoints"][0]["path"]) / "model.safetensors").is_file()
    assert Path(result["metrics"]).is_file() and Path(result["state"]).is_dir()
    report = json.loads((tmp_path / "out" / "data_report.json").read_text())
    assert report["dropped_too_long"] == 4 and "You are a helpful assistant" in report["injected_system_prompt"]


def test_a_start_killed_while_preparing_is_cleared_by_the_next_start(setup, short_data, tmp_path):
    from curate.errors import InputError

    out = tmp_path / "out"
    (out / "data.tmp").mkdir(parents=True)  # what a kill during tokenization leaves: no config.yaml
    (out / "data_report.json").write_text("{")
    (out / ".train.lock").write_text("1 elsewhere\n")
    cfg = tiny.write_config(tmp_path / "c.yaml", setup / "tok", short_data, out, checkpoint={"steps": [99]})
    with pytest.raises(InputError, match="beyond the run's last step"):  # got past the output_dir check
        _train_here(cfg)
    assert not (out / "data.tmp").exists() and not (out / "data_report.json").exists()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="already exists and is not empty"):
        _train_here(cfg)


def test_a_damaged_config_on_resume_is_one_line(setup, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    cfg = tiny.write_config(tmp_path / "c.yaml", setup / "tok", setup / "data.jsonl", out)
    (out / "config.yaml").write_text("")
    _one_error(_train(cfg, "--resume"), "config.yaml' is empty or not a mapping")
    (out / "config.yaml").write_text("model: {name_or_path: debug}\n")
    _one_error(_train(cfg, "--resume"), "config.yaml: model: model.tokenizer is required")
