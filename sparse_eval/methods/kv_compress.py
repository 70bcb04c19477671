"""Shared mechanics of the KV-compression methods (SnapKV, Ada-SnapKV): what happens after selection.

A KV method picks positions at prefill (`select_kv`); `sparse_eval.kv_cache.compress_cache` rewrites the
cache and then calls `on_kv_compressed`, which makes the compressed layout live for decoding. From then on
each decode step attends the compressed cache, masking the padded slots of heads that kept fewer tokens
than the longest head of their layer, and records its compression against the *uncompressed* cache:
(prompt length + generated tokens) / (kept tokens + generated tokens) per query head.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from sparse_eval.base import SparseMethod
from sparse_eval.compression import LayerStats, head_counts

MASKED_DECODE_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
"""SDPA kernels allowed for a masked decode step. cuDNN is left out: with a mask it builds an execution plan
for every new key length, i.e. every decode step (24.5 ms of host time per call against 32 us of GPU time,
profiled on an H200 for ada_snapkv in a batch of four)."""


@dataclass
class KVLayout:
    """One compressed layer: head h holds real tokens in slots [0, kept[h]) and padding in
    [kept[h], padded_len); tokens appended after padded_len are real. `prompt_len` is the length before
    compression, the dense reference of the decode compression."""

    kept: torch.Tensor  # (B, Hkv) long, on the cache's device
    padded_len: int
    prompt_len: int
    ragged: bool  # some head holds padding, so decode needs a mask
    kept_per_head: torch.Tensor  # (Hkv,) float64 on the CPU, summed over the batch, for the report


@dataclass
class KVCompressionMethod(SparseMethod):
    """Base of KV methods: subclasses implement `select_kv` and call `_remember` with what they keep."""

    _selected: dict[int, tuple[torch.Tensor, int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _layouts: dict[int, KVLayout] = field(default_factory=dict, init=False, repr=False, compare=False)

    def _remember(self, layer_idx: int, kept: torch.Tensor, prompt_len: int, stats: LayerStats) -> None:
        """Store a fresh selection for `on_kv_compressed` (forgetting the previous sequence's layout) and
        record prompt vs kept tokens per KV head in the "kv" stats slot."""
        self._layouts.pop(layer_idx, None)
        self._selected[layer_idx] = (kept, prompt_len)
        batch, heads = kept.shape
        stats.add(head_counts(heads, batch * prompt_len), kept.sum(dim=0).double().cpu())

    def on_kv_compressed(self, layer_idx: int, padded_len: int) -> None:
        """Called by `kv_cache.compress_cache` once this layer's cache holds the selected tokens."""
        if layer_idx not in self._selected:
            raise RuntimeError(
                f"{self.name}: layer {layer_idx} was compressed without a selection from its prefill"
            )
        kept, prompt_len = self._selected.pop(layer_idx)
        self._layouts[layer_idx] = KVLayout(
            kept=kept,
            padded_len=padded_len,
            prompt_len=prompt_len,
            ragged=bool((kept < padded_len).any()),
            kept_per_head=kept.sum(dim=0).double().cpu(),
        )

    def decode(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        *,
        layer_idx: int,
        scaling: float,
        stats: LayerStats,
    ) -> torch.Tensor:
        """Attention over the compressed cache minus padded slots; dense if the cache was not compressed."""
        layout = self._layouts.get(layer_idx)
        if layout is None:
            return super().decode(query, key, value, layer_idx=layer_idx, scaling=scaling, stats=stats)
        return self._attend_compressed(
            layout, query, key, value, layer_idx=layer_idx, scaling=scaling, stats=stats
        )

    def extend(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        *,
        layer_idx: int,
        scaling: float,
        stats: LayerStats,
    ) -> torch.Tensor:
        """Several new tokens over the compressed cache (causal among themselves), minus padded slots: a
        question fed after a compressed context reads what decoding would. Dense if not compressed."""
        layout = self._layouts.get(layer_idx)
        if layout is None:
            return super().extend(query, key, value, layer_idx=layer_idx, scaling=scaling, stats=stats)
        return self._attend_compressed(
            layout, query, key, value, layer_idx=layer_idx, scaling=scaling, stats=stats
        )

    def _attend_compressed(
        self,
        layout: KVLayout,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        *,
        layer_idx: int,
        scaling: float,
        stats: LayerStats,
    ) -> torch.Tensor:
        """The last Lq tokens of the cache attend its real slots causally; records against the uncompressed
        cache: per query, (kept + earlier new tokens) of (prompt + earlier new tokens) keys."""
        length, q_len = key.shape[-2], query.shape[-2]
        before = length - q_len  # keys before the first new query: compressed prompt + earlier new tokens
        if before < layout.padded_len:
            raise RuntimeError(
                f"{self.name}: layer {layer_idx} cache holds {length} tokens, no more than its compressed "
                f"layout ({layout.padded_len}); was the cache replaced without a new prefill?"
            )
        batch, q_heads = query.shape[:2]
        group = q_heads // key.shape[1]
        mask = None
        if layout.ragged or q_len > 1:
            positions = torch.arange(length, device=key.device)
            real = (positions < layout.kept[..., None]) | (positions >= layout.padded_len)  # (B, Hkv, Lk)
            rows = torch.arange(q_len, device=key.device)[:, None] + before
            causal = rows >= positions[None, :]  # (Lq, Lk)
            mask = real.repeat_interleave(group, dim=1)[:, :, None, :] & causal
        if mask is None:
            out = F.scaled_dot_product_attention(query, key, value, scale=scaling, enable_gqa=group > 1)
        else:
            with sdpa_kernel(MASKED_DECODE_BACKENDS):
                out = F.scaled_dot_product_attention(
                    query, key, value, attn_mask=mask, scale=scaling, enable_gqa=group > 1
                )
        generated = before - layout.padded_len  # new tokens before this step, in every row and head
        new_pairs = q_len * generated + q_len * (q_len + 1) // 2
        attended = (q_len * layout.kept_per_head + batch * new_pairs).repeat_interleave(group)
        dense = head_counts(q_heads, batch * (q_len * layout.prompt_len + new_pairs))
        stats.add(dense, attended)
        return out
