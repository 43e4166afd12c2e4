"""`sdpa_varlen`: padding-free attention for packed rows when flash-attn is not installed (CPU, or GPUs without
it). A packed row carries `curate_segments` (cumulative sample offsets); attention runs causal SDPA on each
segment separately, so a sample never sees its neighbours and the cost is sum(len^2), not pack_len^2
(transformers' own sdpa path builds a pack_len x pack_len block mask and computes every masked block).
Without segments (unpacked, padded rows) it is exactly transformers' sdpa.

Registered with transformers' AttentionInterface / AttentionMaskInterface under the name `sdpa_varlen`.
Known issue: one SDPA call per segment per layer: fine for a few dozen samples per row, slow for thousands.
"""
from __future__ import annotations

import torch.nn.functional as F

NAME = "sdpa_varlen"


def varlen_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, is_causal=None, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    segments = kwargs.pop("curate_segments", None)
    if segments is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    gqa = getattr(module, "num_key_value_groups", 1) > 1
    import torch

    outs = [F.scaled_dot_product_attention(query[:, :, s:e], key[:, :, s:e], value[:, :, s:e], dropout_p=dropout,
                                           is_causal=True, scale=scaling, enable_gqa=gqa)
            for s, e in zip(segments[:-1], segments[1:])]
    return torch.cat(outs, dim=2).transpose(1, 2).contiguous(), None


def varlen_mask(*, attention_mask=None, **kwargs):
    """No mask for packed rows (the segments carry the structure); sdpa's mask for padded rows."""
    from transformers.masking_utils import sdpa_mask

    if attention_mask is None:
        return None
    return sdpa_mask(attention_mask=attention_mask, **kwargs)


def register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, varlen_sdpa)
    AttentionMaskInterface.register(NAME, varlen_mask)
