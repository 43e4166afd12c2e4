"""Model building and parallelism: the debug preset, `apply_ac`, `apply_fsdp`, and the loss wrapper.

Every rank builds the model with parameters on the meta device (no memory), shards it, allocates only its
shard, then rank 0 reads the real weights and broadcasts them (`set_model_state_dict(...,
broadcast_from_rank0=True)`), so a 4B model costs one CPU copy per node, not one per rank.

`SFTModel` is the FSDP root: it returns the *summed* token NLL and the loop divides by the response-token
count of the whole global batch. With `loss_chunk_tokens > 0` it computes the lm-head + cross-entropy in
checkpointed chunks so the (tokens x vocab) logits never exist at once (16k x 151k fp32 would be 10 GB).
"""
from __future__ import annotations

import contextlib
import torch
import torch.nn as nn
import torch.nn.functional as F

from curate.train import attention
from curate.train.data import IGNORE


def debug_config(cfg, vocab_size: int, tokenizer=None):
    """A tiny transformers config for `model.name_or_path: debug` (random init)."""
    from transformers import AutoConfig

    d = cfg.model.debug
    head_dim = d.head_dim or d.hidden_size // d.num_heads
    kw = dict(vocab_size=d.vocab_size or vocab_size, hidden_size=d.hidden_size, num_hidden_layers=d.num_layers,
              num_attention_heads=d.num_heads, num_key_value_heads=d.num_kv_heads, intermediate_size=d.intermediate_size,
              max_position_embeddings=d.max_position_embeddings, tie_word_embeddings=d.tie_word_embeddings,
              rope_theta=d.rope_theta)
    if d.arch in ("qwen3", "llama"):
        kw["head_dim"] = head_dim
    if tokenizer is not None:
        kw.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id)
    return AutoConfig.for_model(d.arch, **kw)


def resolve_attn(cfg) -> str:
    attention.register()
    want = cfg.model.attn_implementation
    if want != "auto":
        return want
    if torch.cuda.is_available():
        try:
            import flash_attn  # noqa: F401  varlen kernels: packed rows without a mask

            return "flash_attention_2"
        except ImportError:
            pass
    return attention.NAME  # per-segment sdpa for packed rows, plain sdpa otherwise


@contextlib.contextmanager
def params_on_meta():
    """Create parameters on the meta device but buffers for real (rotary inv_freq is a non-persistent
    buffer that no checkpoint carries, so it must be computed, not loaded)."""
    original = nn.Module.register_parameter

    def register(module, name, param):
        original(module, name, param)
        if param is not None and param.device.type != "meta":
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    nn.Module.register_parameter = register
    try:
        yield
    finally:
        nn.Module.register_parameter = original


def build_meta_model(hf_config, attn: str):
    from transformers import AutoModelForCausalLM

    with params_on_meta():
        lm = AutoModelForCausalLM.from_config(hf_config, attn_implementation=attn, dtype=torch.float32)
    return lm


def decoder_layers(lm) -> nn.ModuleList:
    """The repeated blocks: the ModuleList whose children are named in `_no_split_modules`, else the largest."""
    names = set(getattr(lm, "_no_split_modules", None) or [])
    best = None
    for mod in lm.modules():
        if isinstance(mod, nn.ModuleList) and len(mod) > 0:
            if type(mod[0]).__name__ in names:
                return mod
            if best is None or len(mod) > len(best):
                best = mod
    if best is None:
        raise ValueError(f"{type(lm).__name__}: cannot find the decoder layers")
    return best


def _op_sac_context():
    """torchtitan's op-level selective AC: keep attention outputs and every other matmul, recompute the rest
    (attention is about half the FLOPs of a 16k-token sequence, so not recomputing it is the big win)."""
    from collections import defaultdict

    from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

    aten = torch.ops.aten
    save = {aten.mm.default, aten._scaled_dot_product_efficient_attention.default,
            aten._scaled_dot_product_flash_attention.default, aten._scaled_dot_product_cudnn_attention.default,
            aten._scaled_dot_product_flash_attention_for_cpu.default}
    for name in ("_flash_attn_forward", "_flash_attn_varlen_forward"):  # flash-attn 2 custom ops, when installed
        op = getattr(getattr(torch.ops, "flash_attn", None), name, None)
        if op is not None:
            save.add(op.default)
    counts = defaultdict(int)

    def policy(ctx, func, *args, **kwargs):
        key = "recompute" if ctx.is_recompute else "forward"
        if func == aten.mm.default:
            counts[key] += 1
            if counts[key] % 2 == 0:
                return CheckpointPolicy.PREFER_RECOMPUTE
        return CheckpointPolicy.MUST_SAVE if func in save else CheckpointPolicy.PREFER_RECOMPUTE

    return create_selective_checkpoint_contexts(policy)


def apply_ac(lm, mode: str, every: int = 2) -> None:
    """Activation checkpointing per decoder layer (torchtitan style, wrapped before sharding).
    'full': every layer; 'selective': every `every`-th layer (trades memory for ~1/every less recompute);
    'op': every layer, but attention outputs and half the matmuls are saved, not recomputed."""
    if mode == "none":
        return
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    layers = decoder_layers(lm)
    for i in range(len(layers)):
        # preserve_rng_state=False: the models we train use no dropout, and saving RNG costs a sync on GPU.
        if mode == "op":
            layers[i] = checkpoint_wrapper(layers[i], context_fn=_op_sac_context, preserve_rng_state=False)
        elif mode == "full" or i % every == 0:
            layers[i] = checkpoint_wrapper(layers[i], preserve_rng_state=False)


def apply_compile(lm) -> None:
    """Compile each decoder layer in place (same FQNs; repeated blocks share one compiled graph)."""
    for layer in decoder_layers(lm):
        layer.compile()


def apply_fsdp(model: nn.Module, lm, mixed_precision: bool, reshard_after_forward: bool) -> None:
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    # bf16 compute with fp32 gradient reduction: bf16 sums across many ranks lose bits; params stay fp32 masters.
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if mixed_precision else MixedPrecisionPolicy()
    layers = decoder_layers(lm)
    for i, layer in enumerate(layers):
        # One FSDP unit per decoder layer: all-gather one layer at a time, overlapping the next prefetch.
        # The last layer is not resharded after forward: backward needs it immediately.
        fully_shard(layer, mp_policy=mp, reshard_after_forward=reshard_after_forward and i < len(layers) - 1)
    # Root unit holds embeddings, final norm and lm head (tied weights must live in one unit).
    fully_shard(model, mp_policy=mp, reshard_after_forward=reshard_after_forward)


def retie(lm) -> None:
    if getattr(lm.config.get_text_config(), "tie_word_embeddings", False):
        out, inp = lm.get_output_embeddings(), lm.get_input_embeddings()
        if out is not None and out.weight is not inp.weight:
            out.weight = inp.weight


class SFTModel(nn.Module):
    """FSDP root around a HF causal LM; forward returns (summed NLL over target tokens, target count)."""

    def __init__(self, lm, loss_chunk_tokens: int = 0):
        super().__init__()
        self.lm = lm
        self.chunk = loss_chunk_tokens

    def forward(self, input_ids, targets, position_ids, attention_mask=None, segments=None):
        n = (targets != IGNORE).sum()
        # segments: packed-row sample offsets for `sdpa_varlen`; flash-attn derives them from position_ids
        kw = {"curate_segments": segments} if segments is not None and self.lm.config._attn_implementation == attention.NAME else {}
        if self.chunk <= 0:
            logits = self.lm(input_ids=input_ids, position_ids=position_ids, attention_mask=attention_mask,
                             use_cache=False, **kw).logits
            nll = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE, reduction="sum")
            return nll, n
        hidden = self.lm.base_model(input_ids=input_ids, position_ids=position_ids, attention_mask=attention_mask,
                                    use_cache=False, **kw).last_hidden_state.flatten(0, 1)
        tgt = targets.flatten()
        keep = tgt != IGNORE  # prompt rows never reach the lm head
        hidden, tgt = hidden[keep], tgt[keep]
        weight = self.lm.get_output_embeddings().weight
        nll = hidden.new_zeros((), dtype=torch.float32)
        for s in range(0, hidden.shape[0], self.chunk):
            nll = nll + torch.utils.checkpoint.checkpoint(
                _chunk_nll, hidden[s : s + self.chunk], weight, tgt[s : s + self.chunk], use_reentrant=False)
        return nll, n


def _chunk_nll(h, w, t):
    return F.cross_entropy((h @ w.t()).float(), t, reduction="sum")


def count_params(lm) -> tuple[int, int]:
    """(all parameters, parameters doing matmuls per token) from shapes (works on meta): the input embedding is
    a lookup, the output projection a matmul even when tied to it."""
    total = sum(p.numel() for p in lm.parameters())
    inp, out = lm.get_input_embeddings().weight, lm.get_output_embeddings().weight
    return total, total - inp.numel() + (out.numel() if out is inp else 0)


def load_full_state(cfg, hf_config, tokenizer) -> dict:
    """Rank 0 only: the real weights on CPU in fp32 (random init for the debug preset, seeded)."""
    from transformers import AutoModelForCausalLM

    if cfg.model.name_or_path == "debug":
        torch.manual_seed(cfg.train.seed)
        lm = AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32)
    else:
        lm = AutoModelForCausalLM.from_pretrained(cfg.model.name_or_path, dtype=torch.float32,
                                                  trust_remote_code=cfg.model.trust_remote_code)
    return {f"lm.{k}": v for k, v in lm.state_dict().items()}
