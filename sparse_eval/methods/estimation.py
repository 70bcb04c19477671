"""Attention of the last queries over all keys: the cheap estimate that vertical-slash style methods use.

Computed a few heads at a time so the (heads, n_last, L) probability tensor stays bounded at 128k tokens.
On CUDA tensors `vertical_slash_scores` runs the Triton kernel `sparse_eval.kernels.last_query` when triton
imports and `SPARSE_EVAL_ESTIMATE_KERNEL` is not "off" (the same sums up to rounding, ~1.6x faster at 128k on an H200);
"off" exists to measure the torch path. A kernel that fails at runtime warns once and the torch path runs.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType

import torch

from sparse_eval import kernels

ENV = "SPARSE_EVAL_ESTIMATE_KERNEL"
_HEAD_CHUNK_ELEMENTS = 1 << 28  # ~1 GiB of float32 probabilities per chunk
_kernel_failed = False


def kernel_for(query: torch.Tensor, key: torch.Tensor) -> ModuleType | None:
    """The kernel module when it may run on these inputs, else None (the torch path runs)."""
    if not query.is_cuda or os.environ.get(ENV, "auto").lower() == "off":
        return None
    module = kernels.optional("last_query")
    return module if module is not None and module.supports(query, key) else None


def last_query_probs(query: torch.Tensor, key: torch.Tensor, scaling: float, n_last: int) -> torch.Tensor:
    """Causal softmax attention of the last `n_last` queries, in the inputs' dtype.

    query (B, Hq, L, D), key (B, Hkv, L, D) with Hq a multiple of Hkv (GQA: each KV head serves its group of
    query heads in one matmul, without repeating keys). Returns (B, Hq, n, L), n = min(n_last, L). Scores
    are computed in the inputs' dtype (scale folded into the queries) and the softmax in float32, so the
    large (n, L) tensor is read and written once each; the softmax itself runs in float32 internally, and
    callers sum the probabilities in float32 (bf16 probabilities halve the traffic at 128k).
    """
    B, Hq, L, D = query.shape
    Hkv = key.shape[1]
    n = min(n_last, L)
    q = (query[..., L - n :, :] * scaling).reshape(B, Hkv, (Hq // Hkv) * n, D)
    scores = torch.matmul(q, key.transpose(-1, -2)).view(B, Hq, n, L)
    future = torch.ones(n, n, dtype=torch.bool, device=query.device).triu(1)
    scores[..., L - n :].masked_fill_(future, float("-inf"))  # only the last n keys can be in the future
    return torch.softmax(scores, dim=-1)


def diagonal_sums(probs: torch.Tensor) -> torch.Tensor:
    """Sum of causal probabilities along each diagonal: out[..., o] = sum_i probs[..., i, p_i - o], where the
    n rows are the last n positions p_i = L - n + i. Returns (..., L) indexed by the offset o = query - key.

    A strided view walks the diagonals in place (no padded copy): with r = L - 1 - o, row i's entry is flat
    index i * (L + 1) + r + 1 - n. For rows i >= 1 an index that falls before the row lands on the previous
    row's future keys, whose probability is exactly 0, so only row 0 needs separate handling.
    Sums in float32 whatever the probabilities' dtype (bf16 sums would round every diagonal to 8 bits and
    turn near-equal slashes into ties).
    """
    n, L = probs.shape[-2:]
    flat = probs.reshape(-1, n * L)
    out = flat.new_zeros(flat.shape[0], L, dtype=torch.float32)
    if n > 1:
        view = flat.as_strided(
            (flat.shape[0], n - 1, L), (flat.stride(0), L + 1, 1), storage_offset=L + 2 - n
        )
        out += view.sum(-2, dtype=torch.float32)
    out[:, n - 1 :] += flat[:, : L - n + 1]  # row 0: key c sits at r = c + n - 1
    return out.flip(-1).reshape(*probs.shape[:-2], L)


def vertical_slash_scores(
    query: torch.Tensor, key: torch.Tensor, scaling: float, n_last: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(vertical, slash) float32 (B, Hq, L): summed attention of the last queries per key column and per
    diagonal offset, computed a few KV heads (with their query groups) at a time to bound memory."""
    global _kernel_failed
    module = None if _kernel_failed else kernel_for(query, key)
    if module is not None:
        try:
            return module.vertical_slash(query, key, scaling, n_last)
        except torch.cuda.OutOfMemoryError:
            raise  # the inputs' size, not the kernel: the torch path needs as much
        except Exception as error:  # e.g. a compile error on some GPU: warn once, then torch from now on
            _kernel_failed = True
            warnings.warn(
                f"the last-query estimate kernel failed ({type(error).__name__}: {error}); "
                f"using the torch path from now on (set {ENV}=off to silence this)",
                RuntimeWarning,
                stacklevel=2,
            )
    B, Hq, L, _ = query.shape
    Hkv = key.shape[1]
    groups = Hq // Hkv
    n = min(n_last, L)
    chunk = max(1, min(Hkv, _HEAD_CHUNK_ELEMENTS // max(1, B * groups * n * L)))
    vertical = torch.empty(B, Hq, L, dtype=torch.float32, device=query.device)
    slash = torch.empty_like(vertical)
    for g0 in range(0, Hkv, chunk):  # bounded memory: a handful of chunks, not a loop over heads
        g1 = min(Hkv, g0 + chunk)
        h0, h1 = g0 * groups, g1 * groups
        probs = last_query_probs(query[:, h0:h1], key[:, g0:g1], scaling, n)
        vertical[:, h0:h1] = probs.sum(-2, dtype=torch.float32)
        slash[:, h0:h1] = diagonal_sums(probs)
    return vertical, slash
