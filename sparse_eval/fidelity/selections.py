"""What each kind of method lets a query attend, as masks the fidelity metrics can score.

* prefill methods: the `BlockPattern` their `select` returns for the prompt;
* Quest (decode): for each decode query, the pages it would read from the cache up to that query;
* KV methods: the prompt positions `select_kv` keeps, plus every token after the prompt.
Each comes with the (dense, attended) counts that give the achieved compression of its phase.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparse_eval.backends.pattern import BlockPattern, attended_pairs
from sparse_eval.base import SparseMethod
from sparse_eval.compression import LayerStats, causal_pairs
from sparse_eval.methods.pattern_method import PatternPrefillMethod
from sparse_eval.methods.quest import Quest, page_summaries, select_tokens


@dataclass
class RowSelection:
    """Keep masks of decode rows (1, Hq, A, L) and the counts behind their achieved compression."""

    keep: torch.Tensor
    dense: float
    attended: float


def prefill_pattern(
    method: PatternPrefillMethod, query: torch.Tensor, key: torch.Tensor, scaling: float, layer_idx: int
) -> tuple[BlockPattern, float, float]:
    """The prompt's pattern and its (dense, attended) causal pairs over all heads."""
    pattern = method.select(query, key, scaling=scaling, layer_idx=layer_idx)
    dense = float(causal_pairs(query.shape[-2]) * query.shape[1] * query.shape[0])
    return pattern, dense, float(attended_pairs(pattern).sum())


def quest_rows(method: Quest, query: torch.Tensor, key: torch.Tensor, prompt_len: int) -> RowSelection:
    """Keys each decode query (rows prompt_len..L-1 of q (1, Hq, L, D)) reads under Quest."""
    L, hq = key.shape[-2], query.shape[1]
    keep = torch.zeros(1, hq, L - prompt_len, L, dtype=torch.bool, device=key.device)
    dense = attended = 0.0
    summaries = page_summaries(key, method.page_size)
    for row, pos in enumerate(range(prompt_len, L)):
        tokens = select_tokens(
            query[..., pos : pos + 1, :],
            summaries,
            pos + 1,
            method.compression,
            method.page_size,
            method.share_pages,
        )
        mask = torch.zeros(1, tokens.shape[1], L, dtype=torch.bool, device=key.device).scatter_(
            -1, tokens, True
        )
        keep[:, :, row] = mask.repeat_interleave(hq // tokens.shape[1], dim=1)
        dense += (pos + 1) * hq
        attended += tokens.shape[-1] * hq
    return RowSelection(keep, dense, attended)


def kv_rows(
    method: SparseMethod,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    prompt_len: int,
    scaling: float,
) -> RowSelection:
    """Keys the decode rows read after a KV method compressed the prompt's cache: the kept prompt positions
    plus every later token. Counts are the "kv" phase's: prompt tokens vs kept tokens per KV head."""
    L, hq, hkv = key.shape[-2], query.shape[1], key.shape[1]
    P = prompt_len
    indices = method.select_kv(
        query[..., :P, :],
        key[..., :P, :],
        value[..., :P, :],
        layer_idx=0,
        scaling=scaling,
        stats=LayerStats(0, "kv"),
    )
    kept = torch.zeros(1, hkv, L + 1, dtype=torch.bool, device=key.device)
    if indices is None:
        kept[..., :P] = True
    else:
        kept.scatter_(-1, torch.where(indices >= 0, indices, torch.full_like(indices, L)), True)
    kept = kept[..., :L]
    n_kept = float(kept[..., :P].sum())
    kept[..., P:] = True
    keep = kept.repeat_interleave(hq // hkv, dim=1)[:, :, None, :].expand(1, hq, L - P, L)
    return RowSelection(keep, float(P * hkv), n_kept)
