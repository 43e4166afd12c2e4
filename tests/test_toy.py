"""The CPU toy's pieces that are not the task itself: the character-level tokenizer, the tiny model sizes a
study picks, and the model fingerprint eval sample ids are built on (a moved folder keeps it)."""
from __future__ import annotations

import shutil

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from curate.generate.prompting import DEFAULT_TEMPLATE  # noqa: E402
from curate.generate.tiny import PHRASES, build_char_tokenizer  # noqa: E402
from curate.study.spec import Model  # noqa: E402
from curate.study.tiny import SIZES, build_study_model  # noqa: E402
from curate.train.layout import model_fingerprint  # noqa: E402


@pytest.mark.parametrize("text", [
    "<think>\n23+45=68, 68+67=135, 135+12=147\n</think>\n\nThe sum is 147.\n\n\\boxed{147}",
    "Add these numbers: 23 + 45 + 67\n" + DEFAULT_TEMPLATE.split("\n", 1)[1],
    "tabs\tand  spaces, {braces} ~`!@#$%^&*()_-=[]|;:'\",.<>/?",
    "",
])
def test_char_tokenizer_round_trips_after_save_and_load(tmp_path, text):
    from transformers import AutoTokenizer

    build_char_tokenizer(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    phrases = sum(text.count(p) for p in PHRASES)
    assert len(ids) <= len(text) and (phrases or len(ids) == len(text))


def test_char_tokenizer_digits_are_single_tokens_and_the_chat_template_renders(tmp_path):
    tok = build_char_tokenizer(tmp_path)
    assert [tok.convert_ids_to_tokens(i) for i in tok("1234", add_special_tokens=False)["input_ids"]] == list("1234")
    assert tok.decode(tok("é", add_special_tokens=False)["input_ids"]) == "<unk>"
    rendered = tok.apply_chat_template([{"role": "user", "content": "Add these numbers: 1 + 2"}], tokenize=False,
                                       add_generation_prompt=True)
    assert rendered == "<|user|>\nAdd these numbers: 1 + 2\n<|assistant|>\n"
    ids = tok(rendered, add_special_tokens=False)["input_ids"]
    assert len(ids) == len("\nAdd these numbers: 1 + 2\n\n") - len("Add these numbers: ") + 1 + 2
    assert tok.decode(ids + [tok.eos_token_id], skip_special_tokens=True) == "\nAdd these numbers: 1 + 2\n\n"


def test_tiny_sizes_and_the_study_field(tmp_path):
    from transformers import AutoModelForCausalLM

    for size, low, high in (("char-96x4", 0.2e6, 0.5e6), ("char-128x4", 0.5e6, 2e6)):
        m = AutoModelForCausalLM.from_pretrained(build_study_model(tmp_path / size, size=size))
        n = sum(p.numel() for p in m.parameters())
        assert low < n < high and abs(n - SIZES[size].params) / n < 0.1, (size, n)
        assert m.config.vocab_size == len(build_char_tokenizer())
    assert Model(name="t", path="tiny", size="char-128x4").params() == SIZES["char-128x4"].params
    for bad in ({"path": "Qwen/Qwen3-4B-Base", "size": "char-128x4"}, {"path": "tiny", "size": "huge"}):
        with pytest.raises(ValueError, match="size names a tiny model size"):
            Model(name="t", **bad)
    with pytest.raises(ValueError, match="unknown tiny model size"):
        build_study_model(tmp_path / "x", size="huge")


def test_model_fingerprint_follows_content_not_location(tmp_path):
    a = build_study_model(tmp_path / "a" / "tiny", size="bpe-64x2")
    moved = tmp_path / "elsewhere" / "tiny"
    shutil.copytree(a, moved)
    assert model_fingerprint(a) == model_fingerprint(moved)
    same_seed = build_study_model(tmp_path / "b" / "tiny", size="bpe-64x2")
    assert model_fingerprint(same_seed) == model_fingerprint(a)  # same seed and size, same files
    other = build_study_model(tmp_path / "c" / "tiny", seed=1, size="bpe-64x2")
    assert model_fingerprint(other) != model_fingerprint(a)
    (moved / "curate_checkpoint.json").write_text("{}")  # the marker is not content
    assert model_fingerprint(moved) == model_fingerprint(a)
