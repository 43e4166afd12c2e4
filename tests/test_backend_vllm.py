"""vllm backend: runs only where vLLM and a CUDA GPU exist (skipped elsewhere); the missing-package
error is checked everywhere."""
from __future__ import annotations

import importlib.util

import pytest

from curate.errors import BackendError
from curate.generate import RunConfig, SamplingParams, generate, make_backend
from curate.records import Problem

HAVE_VLLM = importlib.util.find_spec("vllm") is not None


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


@pytest.mark.skipif(HAVE_VLLM, reason="vllm is installed")
def test_missing_vllm_names_the_extra():
    with pytest.raises(BackendError, match=r"pip install 'curate\[vllm\]'"):
        make_backend("vllm", "some/model", SamplingParams())


@pytest.mark.gpu
@pytest.mark.skipif(not (HAVE_VLLM and _cuda()), reason="needs vllm and a CUDA GPU")
def test_vllm_generates_into_store(tmp_path):
    from curate.generate.tiny import build_tiny_model
    from curate.store import TraceStore

    model = str(build_tiny_model(tmp_path / "tiny"))
    st = TraceStore(tmp_path / "s")
    st.add_problems([Problem(source="t", domain="math", prompt=f"Add {i} and 2.", reference=str(i + 2)) for i in range(6)])
    opts = {"gpu_memory_utilization": "0.2", "enforce_eager": "true", "max_model_len": "512"}
    r = generate(st, None, "vllm", model, sampling=SamplingParams(max_tokens=8, logprobs=True), options=opts,
                 run_config=RunConfig(n=2), progress=False)
    assert r.generated == 12
    rows = st.query("SELECT finish_reason, completion_tokens, teacher_logprob FROM samples").to_pylist()
    assert all(x["completion_tokens"] <= 8 and x["finish_reason"] in ("stop", "length") for x in rows)
    assert all(x["teacher_logprob"] is not None for x in rows)
    again = generate(st, None, "vllm", model, sampling=SamplingParams(max_tokens=8, logprobs=True), options=opts,
                     run_config=RunConfig(n=2), progress=False)
    assert again.generated == 0
