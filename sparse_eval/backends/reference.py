"""Reference backend: expand the pattern to a dense boolean mask and run masked SDPA.

Obviously correct and device-agnostic (CPU tests run it in float32); its memory is O(H L^2), so it is meant
for short sequences and for checking the fast backend, not for 128k prefill.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sparse_eval.backends.pattern import BlockPattern, dense_mask


def reference_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, pattern: BlockPattern, scaling: float
) -> torch.Tensor:
    """Attention of q (B, Hq, L, D) over k/v (B, Hkv, L, D) restricted to `pattern` (per query head)."""
    groups = query.shape[1] // key.shape[1]
    mask = dense_mask(pattern)
    key = key.repeat_interleave(groups, dim=1)
    value = value.repeat_interleave(groups, dim=1)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling)
