"""Shared mechanics of the prefill methods: select a `BlockPattern`, count it, execute it.

A prefill method only implements `select`; this class records the attended pairs and runs the pattern on the
configured backend, so the reference and the fast kernels always execute the very same selection. A method
whose selection keeps everything (compression 1) runs the dense kernel instead: the same pairs, on the fastest
dense kernel of the device (FlashAttention-4 where installed, else SDPA), and no selection cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from sparse_eval.backends import run_pattern
from sparse_eval.backends.dense import dense_attention
from sparse_eval.backends.pattern import BlockPattern, attended_pairs
from sparse_eval.base import SparseMethod
from sparse_eval.compression import LayerStats, causal_pairs


@dataclass
class PatternPrefillMethod(SparseMethod):
    """Base for prefill methods whose selection is a tile grid plus optional exact key columns."""

    phase: ClassVar[str] = "prefill"

    def select(
        self, query: torch.Tensor, key: torch.Tensor, *, scaling: float, layer_idx: int
    ) -> BlockPattern:
        """The pattern for q (B, Hq, L, D) and k (B, Hkv, L, D). Subclasses implement the paper's rule."""
        raise NotImplementedError

    def selects_everything(self) -> bool:
        """True when `select` would keep every causal pair (compression 1 for fixed-budget methods)."""
        return self.is_dense

    def prefill(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        *,
        layer_idx: int,
        scaling: float,
        stats: LayerStats,
    ) -> torch.Tensor:
        dense = float(causal_pairs(query.shape[-2]) * query.shape[0])
        if self.selects_everything():
            counts = torch.full((query.shape[1],), dense, dtype=torch.float64, device=query.device)
            stats.add(counts, counts)
            return dense_attention(query, key, value, scaling)
        pattern = self.select(query, key, scaling=scaling, layer_idx=layer_idx)
        stats.add(torch.full((query.shape[1],), dense, device=query.device), attended_pairs(pattern).sum(0))
        return run_pattern(query, key, value, pattern, scaling, self.resolve_backend(query))


def check_block_sizes(q_block: int, kv_block: int) -> None:
    """Tiles must be multiples of 16 (the smallest matrix-unit tile) and nest (one divides the other)."""
    for label, size in (("q_block_size", q_block), ("block_size", kv_block)):
        if size < 16 or size % 16:
            raise ValueError(f"{label} must be a positive multiple of 16, got {size}")
    if q_block % kv_block and kv_block % q_block:
        raise ValueError(f"q_block_size ({q_block}) and block_size ({kv_block}) must divide one another")
