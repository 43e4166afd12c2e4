"""Training config: shipped presets validate, the study preset carries docs/paper.md's numbers, `--set` parses
YAML values, unknown keys fail naming the field path, and the resume fingerprint ignores what may change."""
from __future__ import annotations

import pytest

from curate.errors import ConfigError
from curate.train.config import CONFIG_DIR, diff_fingerprints, fingerprint, load_config


def test_shipped_configs_validate():
    assert {p.stem for p in CONFIG_DIR.glob("*.yaml")} >= {"debug", "study"}
    for p in CONFIG_DIR.glob("*.yaml"):
        load_config(p)


def test_study_preset_matches_the_paper():
    from curate.train.checkpoint import export_steps
    from curate.train.data import steps_per_epoch

    c = load_config(CONFIG_DIR / "study.yaml")
    t = c.train
    assert (t.lr, t.weight_decay, tuple(t.betas), t.warmup_ratio, t.schedule, t.grad_clip) == (5e-5, 0.01, (0.9, 0.999), 0.1, "cosine", 1.0)
    assert t.global_batch_size == 256 and t.epochs * steps_per_epoch(20_480, 256) == 640
    assert (c.data.max_length, c.data.max_prompt_length, c.data.max_response_length, c.data.packing) == (20_000, 3_072, 16_384, False)
    steps = export_steps(c.checkpoint, 640)
    assert {10, 20, 40, 80, 160, 320, 480, 640} <= steps and steps == set(range(10, 641, 10))
    assert c.parallel.activation_checkpointing == "full" and c.data.response_end == "eos"


def test_set_overrides_parse_yaml(tmp_path):
    c = load_config(CONFIG_DIR / "debug.yaml", ["train.lr=1e-5", "data.packing=false", "checkpoint.steps=[3, 5]",
                                               "model.debug.num_layers=3"])
    assert c.train.lr == 1e-5 and c.data.packing is False and c.checkpoint.steps == [3, 5] and c.model.debug.num_layers == 3


@pytest.mark.parametrize("override, message", [
    ("train.lrr=1", "train.lrr: unknown key"),
    ("data.truncation=cut", "data.truncation: Input should be 'drop', 'truncate' or 'error'"),
    ("train.global_batch_size=0", "train.global_batch_size: Input should be greater than or equal to 1"),
    ("model.tokenizer=null", "model.tokenizer is required when model.name_or_path is 'debug'"),
    ("data.micro_batch_tokens=100", "micro_batch_tokens must be >= data.max_length"),
    ("trainlr", "expected KEY=VALUE"),
])
def test_bad_config_names_the_field(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(CONFIG_DIR / "debug.yaml", [override])
    assert message in e.value.message


def test_resume_fingerprint_ignores_schedule_logging_and_max_steps():
    a = load_config(CONFIG_DIR / "debug.yaml")
    b = load_config(CONFIG_DIR / "debug.yaml", ["checkpoint.every=5", "logging.progress=false", "train.max_steps=99",
                                                "launch.nproc_per_node=2", "parallel.activation_checkpointing=full"])
    assert diff_fingerprints(fingerprint(a), fingerprint(b)) == []
    c = load_config(CONFIG_DIR / "debug.yaml", ["train.seed=1", "data.packing=false"])
    assert diff_fingerprints(fingerprint(a), fingerprint(c)) == ["data.packing: True -> False", "train.seed: 42 -> 1"]


def test_train_package_never_imports_the_store():
    """DESIGN.md: curate/train reads a dataset from disk only, so it can be lifted out."""
    from pathlib import Path

    import curate.train

    for f in Path(curate.train.__file__).parent.glob("*.py"):
        text = f.read_text()
        assert "curate.store" not in text and "from curate import store" not in text, f


def test_torchrun_command_single_and_multi_node():
    from curate.train.launch import _single_process, torchrun_command

    one = load_config(CONFIG_DIR / "debug.yaml")
    assert _single_process(one)  # one device: the launcher process is the rank
    two = load_config(CONFIG_DIR / "debug.yaml", ["launch.nproc_per_node=2"])
    cmd = torchrun_command(two, resume=True)
    assert not _single_process(two)
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--nproc_per_node=2" in cmd and "--standalone" in cmd
    assert cmd[-3:] == ["curate.train.loop", "runs/debug", "--resume"]
    multi = load_config(CONFIG_DIR / "study.yaml", ["launch.nproc_per_node=8", "launch.nnodes=2", "launch.node_rank=1",
                                                    "launch.master_addr=10.0.0.1"])
    cmd = torchrun_command(multi, resume=False)
    assert {"--nnodes=2", "--node_rank=1", "--master_addr=10.0.0.1", "--master_port=29500"} <= set(cmd)
    assert "--standalone" not in cmd and "--resume" not in cmd
    rdzv = load_config(CONFIG_DIR / "study.yaml", ["launch.nnodes=2", "launch.rdzv_endpoint=host:29400"])
    assert "--rdzv_endpoint=host:29400" in torchrun_command(rdzv, resume=False)


def test_shipped_configs_load_by_name(tmp_path, monkeypatch):
    """`curate train study` works outside the checkout: the names resolve inside the package, and the
    package ships the YAML files as package data."""
    import tomllib
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    assert load_config("study").train.global_batch_size == 256
    assert load_config("debug", ["train.max_steps=3"]).train.max_steps == 3
    with pytest.raises(ConfigError) as e:
        load_config("studdy")
    assert "no training config named 'studdy'" in e.value.message and "debug, study" in e.value.hint
    (tmp_path / "study").write_text("model: {name_or_path: debug}\n")  # a file of that name wins
    with pytest.raises(ConfigError, match="study: "):
        load_config("study")
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "configs/*.yaml" in pyproject["tool"]["setuptools"]["package-data"]["curate.train"]


def test_checkpoint_steps_must_be_positive():
    with pytest.raises(ConfigError, match="checkpoint.steps.0: Input should be greater than or equal to 1"):
        load_config(CONFIG_DIR / "debug.yaml", ["checkpoint.steps=[0, 5]"])
    with pytest.raises(ConfigError, match="checkpoint.save_final: unknown key"):  # the last step is always saved
        load_config(CONFIG_DIR / "debug.yaml", ["checkpoint.save_final=false"])
