"""A backend's identity without loading it: the ids it gives are those stores already hold (pinned here), the
identity declared from the class and its config is the one the built backend reports, it pickles for Ray
workers, and an eval plans without building its backend."""
from __future__ import annotations

import pickle

import pytest

from curate.evaluate.runner import EvalOptions, LazyBackend
from curate.evaluate.targets import Target
from curate.generate import SamplingParams
from curate.generate.runner import RunConfig, generator_identity
from curate.generate.spec import BackendIdentity, BackendSpec
from curate.records import Sample

SAMPLING = SamplingParams(temperature=0.0, max_tokens=64)
CFG = RunConfig(n=2, seed=3, sampling=SAMPLING, system="sys")
URL = "http://127.0.0.1:1/v1"
CHECKPOINT = Target(run="r", checkpoint="ck", step=5, model_ref="/tmp/ck", identity="r@5")
SERVED = Target(run="r", checkpoint="ck", step=5, model_ref="served", identity="served@x", endpoint=URL)


def _sample_id(identity: BackendIdentity) -> str:
    return Sample.identity("p" * 16, generator_identity(identity, CFG), 1, 3)


# ids written by earlier releases: a store they wrote must resume without generating anything again
@pytest.mark.parametrize("identity, expected", [
    (lambda: BackendSpec("synthetic", None, SAMPLING, {"wrong_share": 0.25}).local_identity(),
     "28be8d441109f8b77704e0addbf62e0c"),
    (lambda: BackendSpec("openai", "served", SAMPLING, {"base_url": URL}, "r1").local_identity(),
     "ed84512a4cfc22b791fa9786134decf0"),
    (lambda: LazyBackend("hf", CHECKPOINT, EvalOptions(backend_options={"dtype": "float32"})).identity,
     "86e80bfc08a2155de4422e4f481dca84"),
    (lambda: LazyBackend("hf", SERVED, EvalOptions(revision="rv")).identity, "0e55a50831003804404c6faccf3b16c8"),
], ids=["generate-synthetic", "generate-openai", "eval-hf-checkpoint", "eval-endpoint"])
def test_sample_ids_are_those_stored_before(identity, expected):
    assert _sample_id(identity()) == expected


@pytest.mark.parametrize("name, model, options", [
    ("synthetic", "countdown-dfs", {"wrong_share": 0.5, "think": False}),
    ("openai", "served", {"base_url": URL, "endpoint": "completions", "extra_body": {"repetition_penalty": 1.1}}),
])
def test_declared_identity_is_what_the_built_backend_reports(name, model, options):
    spec = BackendSpec(name, model, SAMPLING, options, "1" if name == "synthetic" else None)
    backend = spec.build()
    try:
        assert spec.declared_identity() == BackendIdentity.of(backend) == spec.local_identity()
    finally:
        backend.close()


def test_identity_and_spec_pickle_for_workers():
    spec = BackendSpec("synthetic", None, SAMPLING, {"verbosity": "terse"})
    ident = spec.local_identity()
    assert pickle.loads(pickle.dumps(ident)) == ident
    back = pickle.loads(pickle.dumps(spec))
    assert back == spec and back.config == spec.config


def test_model_backed_backends_report_their_identity_only_when_built():
    spec = BackendSpec("hf", "/nowhere/model", SAMPLING, {"dtype": "bfloat16"})
    assert spec.local_identity() is None  # the revision a model resolves is known only once it is loaded
    assert spec.declared_identity(model="run@7") == BackendIdentity("hf", "run@7", None, {"raw": False, "dtype": "bfloat16"})


def test_eval_backend_is_not_built_for_its_identity():
    lazy = LazyBackend("hf", CHECKPOINT, EvalOptions())  # /tmp/ck holds no model: building it would fail
    assert lazy.identity.model == "r@5" and lazy.spec.model == "/tmp/ck"
    assert lazy.name == "hf" and lazy.take_refusals() == []
    lazy.close()
    served = LazyBackend("hf", SERVED, EvalOptions())
    assert served.name == "openai" and served.spec.options["base_url"] == URL
