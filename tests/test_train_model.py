"""Model helpers: every activation-checkpointing mode and the chunked linear cross-entropy leave the loss and
the gradients unchanged (they only trade memory for recompute); FLOP counting treats a tied lm head as a matmul."""
from __future__ import annotations


import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import tiny  # noqa: E402

from curate.train.config import DataCfg, TrainConfig  # noqa: E402
from curate.train.data import collate, prepare  # noqa: E402
from curate.train.model import SFTModel, apply_ac, count_params, debug_config, resolve_attn  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tok = tiny.make_tokenizer(tmp_path_factory.mktemp("tok"))
    data, _ = prepare(tok, tiny.rows(6, seed=9), DataCfg(path="x", max_length=512), "fixture")
    cfg = TrainConfig.model_validate({"model": {"name_or_path": "debug", "tokenizer": "t", "debug": {"num_layers": 3}},
                                      "data": {"path": "x"}, "output_dir": "o"})
    return tok, data, cfg


def _loss_and_grads(setup, ac: str, chunk: int = 0, packing: bool = True):
    from transformers import AutoModelForCausalLM

    tok, data, cfg = setup
    torch.manual_seed(0)
    lm = AutoModelForCausalLM.from_config(debug_config(cfg, len(tok), tok), attn_implementation=resolve_attn(cfg),
                                          dtype=torch.float32)
    apply_ac(lm, ac, every=2)
    model = SFTModel(lm, chunk)
    nll, n = model(**collate(data, list(range(len(data))), packing, tok.pad_token_id))
    (nll / n).backward()
    return float(nll.detach()), {k.replace("._checkpoint_wrapped_module", ""): p.grad.clone() for k, p in lm.named_parameters()}


@pytest.mark.parametrize("ac, chunk", [("full", 0), ("selective", 0), ("op", 0), ("none", 24), ("op", 24)])
def test_ac_modes_and_chunked_loss_do_not_change_numbers(setup, ac, chunk):
    ref_loss, ref_grads = _loss_and_grads(setup, "none")
    loss, grads = _loss_and_grads(setup, ac, chunk)
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    assert grads.keys() == ref_grads.keys()
    for k, g in ref_grads.items():
        assert torch.allclose(grads[k], g, atol=1e-6, rtol=1e-5), k


def test_count_params_counts_tied_head_as_matmul(setup):
    from transformers import AutoModelForCausalLM

    tok, _, cfg = setup
    lm = AutoModelForCausalLM.from_config(debug_config(cfg, len(tok), tok))
    total, flop_params = count_params(lm)
    emb = lm.get_input_embeddings().weight.numel()
    assert lm.config.tie_word_embeddings and total == sum(p.numel() for p in lm.parameters())
    assert flop_params == total  # tied: embedding lookup is free, the same matrix as lm head is a matmul
    assert total - emb > 0
