"""Training data: response-only masking, the EOS trained, the length policy counted, packing that never
lets samples see each other (packed loss == unpacked loss), and loader errors naming file/row/field."""
from __future__ import annotations


import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import tiny  # noqa: E402

from curate.errors import InputError  # noqa: E402
from curate.train.config import DataCfg  # noqa: E402
from curate.train.data import (IGNORE, collate, load_messages, micro_batches, prepare, sample_targets,  # noqa: E402
                               split_ranks, tokenize_rows, validate_messages)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tiny.make_tokenizer(tmp_path_factory.mktemp("tok"))


def _data_cfg(**kw):
    base = dict(path="x", max_length=512, max_prompt_length=256, max_response_length=400)
    return DataCfg(**{**base, **kw})


def test_response_only_labels_template_mode(tok):
    rows = tiny.rows(5, seed=1)
    for msgs, (ids, plen, appended) in zip(rows, tokenize_rows(tok, rows, "template")):
        tgt = sample_targets(np.array(ids), plen)
        trained = [t for t in tgt if t != IGNORE]
        # exactly the response tokens are targets, each predicted from the position before it
        assert trained == ids[plen:]
        assert tok.decode(ids[:plen]) == tok.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
        # the response ends with the template's end-of-turn token, which is trained; no extra EOS needed
        assert tok.decode(trained) == msgs[-1]["content"] + "<|im_end|>\n"
        assert not appended


def test_response_only_labels_eos_mode(tok):
    rows = tiny.rows(3, seed=2)
    for msgs, (ids, plen, _) in zip(rows, tokenize_rows(tok, rows, "eos")):
        assert ids[-1] == tok.eos_token_id  # the study: response text + EOS, EOS trained
        assert tok.decode(ids[plen:]) == msgs[-1]["content"] + tok.eos_token
        tgt = sample_targets(np.array(ids), plen)
        assert tgt[-2] == tok.eos_token_id and tgt[-1] == IGNORE


def test_eos_appended_when_template_emits_none(tok):
    import copy

    bare = copy.copy(tok)
    bare.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
    ids, plen, appended = next(tokenize_rows(bare, tiny.rows(1), "template"))
    assert appended and ids[-1] == tok.eos_token_id


def test_length_policy_is_counted(tok):
    rows = tiny.rows(30, seed=3, max_words=80)
    lengths = [len(ids) for ids, _, _ in tokenize_rows(tok, rows, "template")]
    limit = int(np.median(lengths))
    n_over = sum(L > limit for L in lengths)
    assert n_over > 0
    data, rep = prepare(tok, rows, _data_cfg(max_length=limit, truncation="drop"), "fixture")
    assert rep["dropped_too_long"] == n_over and len(data) == 30 - n_over and data.lengths.max() <= limit
    data, rep = prepare(tok, rows, _data_cfg(max_length=limit, truncation="truncate"), "fixture")
    assert rep["truncated"] == n_over and len(data) == 30 and data.lengths.max() <= limit
    with pytest.raises(InputError, match="row .* is too long"):
        prepare(tok, rows, _data_cfg(max_length=limit, truncation="error"), "fixture")


@pytest.mark.parametrize("attn", ["sdpa_varlen", "sdpa", "eager"])
def test_packing_never_mixes_samples_and_matches_unpacked(tok, attn):
    """sdpa_varlen: per-segment SDPA; sdpa/eager: transformers' block-diagonal mask from restarting position ids."""
    from transformers import AutoModelForCausalLM

    from curate.train.config import TrainConfig
    from curate.train.model import SFTModel, debug_config, resolve_attn

    rows = tiny.rows(7, seed=4)
    data, _ = prepare(tok, rows, _data_cfg(), "fixture")
    cfg = TrainConfig.model_validate({"model": {"name_or_path": "debug", "tokenizer": "t", "attn_implementation": attn},
                                      "data": {"path": "x"}, "output_dir": "o"})
    torch.manual_seed(0)
    lm = AutoModelForCausalLM.from_config(debug_config(cfg, len(tok), tok), attn_implementation=resolve_attn(cfg), dtype=torch.float32)
    idx = list(range(len(data)))
    with torch.no_grad():
        singles = [SFTModel(lm)(**collate(data, [i], False, tok.pad_token_id)) for i in idx]
        padded = SFTModel(lm)(**collate(data, idx, False, tok.pad_token_id))
        packed = SFTModel(lm)(**collate(data, idx, True, tok.pad_token_id))
        chunked = SFTModel(lm, loss_chunk_tokens=16)(**collate(data, idx, True, tok.pad_token_id))
    ref = sum(s[0] for s in singles)
    assert int(packed[1]) == int(padded[1]) == sum(int(s[1]) for s in singles) == int((data.lengths - data.prompt_lens).sum())
    for got in (padded, packed, chunked):
        assert torch.allclose(got[0], ref, rtol=1e-5), (got[0], ref)
    # a sample inside a pack gives the logits it gives alone: no attention across the boundary
    # (use_cache=False matters: with a cache, transformers skips the packed-sequence mask)
    b = collate(data, idx, True, tok.pad_token_id)
    extra = {"curate_segments": b["segments"]} if attn == "sdpa_varlen" else {}
    logits = lm(input_ids=b["input_ids"], position_ids=b["position_ids"], use_cache=False, **extra).logits[0]
    start = int(data.offsets[3])
    alone = lm(input_ids=torch.as_tensor(data.sample(3)[0][None].astype(np.int64))).logits[0]
    assert torch.allclose(logits[start : start + len(alone)], alone, atol=1e-5)


def test_micro_batches_and_rank_split():
    lengths = np.array([50, 10, 40, 30, 20, 60, 5, 15])
    idx = np.arange(8)
    parts = split_ranks(idx, lengths, 2)
    assert sorted(parts[0] + parts[1]) == list(range(8))
    loads = [lengths[p].sum() for p in parts]
    assert abs(loads[0] - loads[1]) <= 10
    bins = micro_batches(list(range(8)), lengths, True, 1, 64)
    assert sorted(i for b in bins for i in b) == list(range(8))
    assert all(lengths[b].sum() <= 64 for b in bins)
    assert micro_batches([3, 1, 2], lengths, False, 2, 0) == [[3, 1], [2]]


def test_loader_errors_name_file_row_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n{"text": "hi"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: no 'messages' field"):
        load_messages(bad)
    (tmp_path / "broken.jsonl").write_text('{"messages": [}\n')
    with pytest.raises(InputError, match=r"broken.jsonl:1: malformed JSON"):
        load_messages(tmp_path / "broken.jsonl")
    with pytest.raises(InputError, match="row 0: the last message must be the assistant"):
        validate_messages([[{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]], "d")
    with pytest.raises(InputError, match="dataset not found"):
        load_messages(tmp_path / "missing")


def test_loads_parquet_and_save_to_disk(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"messages": tiny.rows(4)})
    ds.to_parquet(str(tmp_path / "d.parquet"))
    ds.save_to_disk(str(tmp_path / "disk"))
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "dd"))
    ds.save_to_disk(str(tmp_path / "mixout" / "dataset"))  # the layout `curate mix` writes
    for p in (tmp_path / "d.parquet", tmp_path / "disk", tmp_path / "dd", tmp_path / "mixout"):
        assert load_messages(p) == tiny.rows(4)
    with pytest.raises(InputError, match="no 'chat' column"):
        load_messages(tmp_path / "disk", field="chat")
