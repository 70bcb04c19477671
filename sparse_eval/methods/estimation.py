"""Attention of the last queries over all keys: the cheap estimate that vertical-slash style methods use.

Computed a few heads at a time so the (heads, n_last, L) probability tensor stays bounded at 128k tokens.
"""

from __future__ import annotations

import torch

_HEAD_CHUNK_ELEMENTS = 1 << 28  # ~1 GiB of float32 probabilities per chunk


def last_query_probs(query: torch.Tensor, key: torch.Tensor, scaling: float, n_last: int) -> torch.Tensor:
    """Causal softmax attention (float32) of the last `n_last` queries for a chunk of heads.

    query (B, H, L, D) and key (B, H, L, D) must already share heads. Returns (B, H, n, L), n = min(n_last, L).
    """
    L = query.shape[-2]
    n = min(n_last, L)
    q = query[..., L - n :, :]
    scores = torch.matmul(q, key.transpose(-1, -2)).float() * scaling
    rows = torch.arange(L - n, L, device=query.device)[:, None]
    scores = scores.masked_fill(torch.arange(L, device=query.device)[None, :] > rows, float("-inf"))
    return torch.softmax(scores, dim=-1)


def diagonal_sums(probs: torch.Tensor) -> torch.Tensor:
    """Sum of probabilities along each causal diagonal: out[..., o] = sum_i probs[..., i, p_i - o], where the
    n rows are the last n positions p_i = L - n + i. Returns (..., L) indexed by the offset o = query - key."""
    n, L = probs.shape[-2:]
    flipped = torch.nn.functional.pad(probs.flip(-1), (0, n))  # row i, column t <-> key L - 1 - t
    flat = flipped.reshape(-1, n * (L + n))
    # row i's offset o sits at column t = o + n - 1 - i, i.e. flat index (n - 1) + i * (L + n - 1) + o
    view = flat.as_strided((flat.shape[0], n, L), (flat.stride(0), L + n - 1, 1), storage_offset=n - 1)
    return view.sum(-2).reshape(*probs.shape[:-2], L)


def vertical_slash_scores(
    query: torch.Tensor, key: torch.Tensor, scaling: float, n_last: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(vertical, slash) float32 (B, Hq, L): summed attention of the last queries per key column and per
    diagonal offset. key has Hkv heads (GQA); it is repeated per chunk of query heads only."""
    B, Hq, L, _ = query.shape
    groups = Hq // key.shape[1]
    n = min(n_last, L)
    chunk = max(1, min(Hq, _HEAD_CHUNK_ELEMENTS // max(1, B * n * (L + n))))
    vertical = torch.empty(B, Hq, L, dtype=torch.float32, device=query.device)
    slash = torch.empty_like(vertical)
    for h0 in range(0, Hq, chunk):  # bounded memory: a handful of chunks, not a loop over heads
        h1 = min(Hq, h0 + chunk)
        kv_heads = torch.arange(h0, h1, device=query.device) // groups
        probs = last_query_probs(query[:, h0:h1], key[:, kv_heads], scaling, n)
        vertical[:, h0:h1] = probs.sum(-2)
        slash[:, h0:h1] = diagonal_sums(probs)
    return vertical, slash
