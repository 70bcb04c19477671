"""Dense causal attention, the default of every phase and the ground truth of the tests.

A causal prefill runs on FlashAttention-4 where it is installed and usable (`sparse_eval.backends.flash`:
the fastest dense kernel on Hopper/Blackwell), else on SDPA (cuDNN on H100/H200, the math kernel on CPU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dense_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float
) -> torch.Tensor:
    """Causal attention where the `Lq` queries are the last `Lq` of the `Lk` keys (bottom-right aligned).

    q (B, Hq, Lq, D), k/v (B, Hkv, Lk, D) with Hq a multiple of Hkv (GQA handled by SDPA, no repeat).
    """
    q_len, k_len = query.shape[-2], key.shape[-2]
    if k_len < q_len:
        raise ValueError(f"dense_attention needs at least as many keys ({k_len}) as queries ({q_len})")
    gqa = query.shape[1] != key.shape[1]
    if q_len == k_len and q_len > 1 and query.is_cuda:
        from sparse_eval.backends.flash import dense_causal

        out = dense_causal(query, key, value, scaling)
        if out is not None:
            return out
    if q_len == k_len:
        return F.scaled_dot_product_attention(
            query, key, value, is_causal=True, scale=scaling, enable_gqa=gqa
        )
    if q_len == 1:
        return F.scaled_dot_product_attention(query, key, value, scale=scaling, enable_gqa=gqa)
    offset = k_len - q_len
    rows = torch.arange(q_len, device=query.device)[:, None] + offset
    mask = rows >= torch.arange(k_len, device=query.device)[None, :]
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling, enable_gqa=gqa)
