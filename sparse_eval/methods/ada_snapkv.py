"""Ada-SnapKV: SnapKV scores with the budget spread adaptively across the KV heads of a layer (Feng et al.,
"Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation", arXiv 2407.11550).

A layer keeps as many tokens in total as SnapKV would (num_kv_heads × capacity), but heads whose attention
is concentrated give up budget to heads whose attention is spread out: after every head receives a floor,
the remaining budget goes to the best scores of the whole layer, whichever head they belong to.

Heads therefore keep different numbers of tokens, while a `DynamicCache` layer holds one length for all
heads. The cache is padded to the longest head and the padded slots are masked out of every later decode
step (`kv_compress.KVCompressionMethod.decode`). The report records the *logical* kept tokens per head
(what attention sees); the bytes stored are num_kv_heads × longest head (`kv_cache.cache_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from sparse_eval.compression import LayerStats
from sparse_eval.methods.snapkv import (
    SnapKV,
    forced_counts,
    kv_capacity,
    observation_scores,
    pool_scores,
    protect,
)
from sparse_eval.registry import register_method


def ada_allocate(scores: torch.Tensor, capacity: int, sink: int, local: int, floor: float) -> torch.Tensor:
    """Ada-KV allocation on pooled scores (B, Hkv, L) -> keep mask (B, Hkv, L) bool.

    Every head first keeps its sinks, its recent tokens and its own best positions up to
    max(int(floor × capacity), sink + local); the rest of the layer budget, Hkv × capacity in all, goes to
    the best remaining scores over all heads of the layer together."""
    batch, heads, length = scores.shape
    if capacity >= length:
        return torch.ones_like(scores, dtype=torch.bool)
    n_sink, n_local = forced_counts(capacity, sink, local)
    ranked = protect(scores, n_sink, n_local)
    per_head = min(capacity, max(int(capacity * floor), n_sink + n_local))
    keep = torch.zeros_like(scores, dtype=torch.bool)
    keep.scatter_(2, ranked.topk(per_head, dim=-1).indices, True)
    remaining = heads * (capacity - per_head)
    if remaining:
        flat = ranked.masked_fill(keep, float("-inf")).reshape(batch, heads * length)
        keep.view(batch, heads * length).scatter_(1, flat.topk(remaining, dim=-1).indices, True)
    return keep


def mask_to_indices(keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep mask (B, H, L) -> (indices (B, H, longest) ascending and padded with -1, kept counts (B, H))."""
    length = keep.shape[-1]
    counts = keep.sum(dim=-1)
    positions = torch.arange(length, device=keep.device)
    order = torch.where(keep, positions, positions + length).sort(dim=-1).values
    longest = int(counts.max().item())
    indices = order[..., :longest]
    return torch.where(indices < length, indices, torch.full_like(indices, -1)), counts


def ada_snapkv_select_indices(
    query: torch.Tensor,
    key: torch.Tensor,
    *,
    compression: float,
    scaling: float,
    window: int = 256,
    pool_kernel: int = 21,
    sink: int = 4,
    local: int = 128,
    floor: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """End to end Ada-SnapKV selection from prefill q (B, Hq, L, D), k (B, Hkv, L, D):
    (indices (B, Hkv, longest) padded with -1, kept counts (B, Hkv)). The callable to time."""
    length = key.shape[-2]
    capacity = kv_capacity(length, compression)
    if capacity >= length:
        keep = torch.ones(*key.shape[:2], length, dtype=torch.bool, device=key.device)
    else:
        scores = observation_scores(query, key, window=window, scaling=scaling, reduce="max")
        keep = ada_allocate(pool_scores(scores, pool_kernel), capacity, sink, local, floor)
    return mask_to_indices(keep)


@register_method
@dataclass
class AdaSnapKV(SnapKV):
    """Ada-SnapKV (Ada-KV's adaptive allocation on SnapKV scores, Feng et al. 2024, arXiv 2407.11550).

    KV-cache compression after a dense prefill, with a per-layer budget spread unevenly over KV heads.

    Attributes:
        compression: prompt tokens / kept tokens per layer: the layer keeps num_kv_heads × round(L /
            compression) tokens in total. Single heads keep more or fewer; the report records the achieved
            ratio per head and per layer.
        window: last prompt queries whose attention scores the positions (seed: 256).
        pool_kernel: width of the average pooling over positions (seed: 21; odd).
        sink: first positions every head keeps (seed: 4).
        local: most recent positions every head keeps (seed: 128).
        floor: share of the per-head capacity every head keeps from its own ranking before the layer-wide
            allocation (seed: 0.2), so no head is starved; never below sink + local.

    Scores are the *maximum* attention probability over the window queries and the query heads of a GQA
    group (Ada-KV's choice, and the seed's), so one strongly attending query is enough to keep a token.
    """

    floor: float = 0.2  # window, pool_kernel, sink and local are SnapKV's fields

    name: ClassVar[str] = "ada_snapkv"
    phase: ClassVar[str] = "kv"

    def __post_init__(self) -> None:
        super().__post_init__()  # SnapKV validates the shared window hyperparameters
        if not 0.0 <= float(self.floor) <= 1.0:
            raise ValueError(f"ada_snapkv floor must lie in [0, 1], got {self.floor!r}")
        self.floor = float(self.floor)

    def select_kv(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        *,
        layer_idx: int,
        scaling: float,
        stats: LayerStats,
    ) -> torch.Tensor:
        """Kept positions (B, Hkv, longest), -1 marking padding; records prompt vs kept tokens per KV head.
        A new prompt also forgets the padded layout of the previous sequence for this layer."""
        indices, kept = ada_snapkv_select_indices(
            query,
            key,
            compression=self.compression,
            scaling=scaling,
            window=self.window,
            pool_kernel=self.pool_kernel,
            sink=self.sink,
            local=self.local,
            floor=self.floor,
        )
        self._remember(layer_idx, kept, key.shape[-2], stats)
        return indices
