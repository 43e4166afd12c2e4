"""A tiny random causal LM and locally built tokenizers, for tests, benchmarks and CPU studies (no downloads).

`build_tiny_model(dir)` trains a byte-level BPE tokenizer on a few strings, wraps it in
PreTrainedTokenizerFast with a small chat template, builds a 2-layer Llama from a config with random
weights and saves both, so `from_pretrained(dir)` works like any hub model. `<eos>` is token 0.
`build_char_tokenizer(dir)` is a character-level tokenizer (one token per printable ASCII character,
newline and tab; the chat template's role markers and a few fixed phrases of the study's prompt and the
toy's traces are single tokens; anything else is `<unk>`):
digits stay digits, which is what lets a ~1M-parameter model learn multi-digit addition.
`build_tiny_reward_model(dir)` is the same tokenizer with a 2-layer Llama sequence classifier (one output).
`stop_immediately=True` zeroes the final norm, so every logit is 0 and greedy decoding picks token 0
(`<eos>`) at once: a model that always stops, to test finish reasons.
"""
from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
CORPUS = [
    "Using the numbers below, write an arithmetic expression that equals the target.",
    "Numbers: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 25, 50, 75, 100] Target: 952",
    "Please reason step by step, and put your final answer within \\boxed{}.",
    "<think> Let me try 25 * 4 = 100. Wait, that is a dead end. Let me check. </think> The answer is",
    "What is the sum of 12 and 30? Alternatively, multiply both sides by two.",
]


def build_tiny_tokenizer(path: str | Path, vocab_size: int = 320):
    """Train the byte-level BPE tokenizer, save it with the chat template, and return it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<eos>", "<pad>", "<bos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", bos_token="<bos>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    return fast


CHAR_SPECIALS = ["<eos>", "<pad>", "<bos>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>"]
CHARS = ["\n", "\t"] + [chr(c) for c in range(32, 127)]
# Fixed phrases of the study's prompts and the toy's traces, one token each (as any trained tokenizer merges
# frequent strings): they halve a chain-sum row's length, and so the CPU toy's training time, while digits,
# operators and every other character stay single characters.
PHRASES = ["Please reason step by step, and put your final answer within \\boxed{}.", "Add these numbers: ",
           "<think>", "</think>", "The sum is ", "\\boxed{"]


def build_char_tokenizer(path: str | Path | None = None):
    """The character-level tokenizer (ids: the specials, then newline, tab and printable ASCII in code order),
    saved with the chat template when `path` is given, and returned. Same files on every machine."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(CHAR_SPECIALS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(CHAR_SPECIALS)
    tok.add_tokens([AddedToken(p, normalized=False) for p in PHRASES])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", bos_token="<bos>",
                                   unk_token="<unk>", additional_special_tokens=CHAR_SPECIALS[4:])
    fast.chat_template = CHAT_TEMPLATE
    if path is not None:
        Path(path).mkdir(parents=True, exist_ok=True)
        fast.save_pretrained(path)
    return fast


def build_tiny_model(path: str | Path, stop_immediately: bool = False, vocab_size: int = 320, seed: int = 0) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(path)
    fast = build_tiny_tokenizer(path, vocab_size)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      eos_token_id=0, pad_token_id=1, bos_token_id=2, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    if stop_immediately:
        with torch.no_grad():
            model.model.norm.weight.zero_()
    model.save_pretrained(path)
    return path


def build_tiny_reward_model(path: str | Path, vocab_size: int = 320, seed: int = 0) -> Path:
    """A 2-layer random Llama sequence classifier with one output (a reward model's shape) and the tiny
    tokenizer with its chat template, saved like any hub reward model."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    path = Path(path)
    fast = build_tiny_tokenizer(path, vocab_size)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, num_labels=1,
                      eos_token_id=0, pad_token_id=1, bos_token_id=2)
    LlamaForSequenceClassification(cfg).save_pretrained(path)
    return path
