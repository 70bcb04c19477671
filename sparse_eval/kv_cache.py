"""Rewrite a transformers `DynamicCache` after prefill so it holds only the KV positions a method kept.

transformers ≥ 5 lets `cache.layers[i].keys / .values` be reassigned; layers may then hold different
lengths and decoding appends to them as usual. Positions are *not* stored in the cache (RoPE is already
applied to the cached keys), so after compression the caller must pass the original positions explicitly
(`sparse_eval.generation` does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer


def gather_kv(states: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """states (B, H, L, D) and ascending positions (B, H, K), -1 marking padding -> (B, H, K, D).
    Padding slots are filled with zeros; whoever attends them must mask them (the methods do)."""
    valid = indices >= 0
    index = indices.clamp_min(0)[..., None].expand(-1, -1, -1, states.shape[-1])
    return states.gather(2, index).masked_fill(~valid[..., None], 0)


def _check_indices(layer_idx: int, indices: torch.Tensor, keys: torch.Tensor) -> None:
    """Clear errors for selections that do not fit the cached layer."""
    if indices.dim() != 3 or tuple(indices.shape[:2]) != tuple(keys.shape[:2]):
        raise ValueError(
            f"layer {layer_idx}: kept indices must have shape (batch, kv_heads, keep) = "
            f"({keys.shape[0]}, {keys.shape[1]}, keep), got {tuple(indices.shape)}"
        )
    if indices.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"layer {layer_idx}: kept indices must be integers, got {indices.dtype}")
    if indices.numel() and int(indices.max()) >= keys.shape[-2]:
        raise ValueError(
            f"layer {layer_idx}: kept index {int(indices.max())} is past the cached length {keys.shape[-2]}"
        )


def compress_cache(cache: DynamicCache, pending: Mapping[int, torch.Tensor], method: Any = None) -> None:
    """Keep only `pending[layer_idx]` positions (B, Hkv, keep; -1 = padding) in each listed layer, in place.

    `method` (the session, or at batch size 1 the session's method) is told about every rewritten layer
    through its optional `on_kv_compressed(layer_idx, padded_len)` hook, which switches its decode step to
    the compressed layout; in a declared batch (`SparseSession.batch`) only the session knows each row's
    own layout, so pass the session there (a selection holding padding, -1, is refused without one: nothing
    would mask it). Every layer is checked before any is rewritten. Sliding-window layers are refused: they
    drop tokens on their own, and their bookkeeping (`cumulative_length`) would no longer match what they
    hold."""
    if not isinstance(cache, DynamicCache):
        raise TypeError(f"compress_cache needs a transformers DynamicCache, got {type(cache).__name__}")
    hook = getattr(method, "on_kv_compressed", None)
    layers = {i: _checked_layer(cache, i, indices, masked=hook is not None) for i, indices in pending.items()}
    for layer_idx, indices in sorted(pending.items()):  # every layer checked first: all rewritten, or none
        layer = layers[layer_idx]
        indices = indices.to(layer.keys.device)
        layer.keys = gather_kv(layer.keys, indices)
        layer.values = gather_kv(layer.values, indices)
        if hook is not None:
            hook(layer_idx, indices.shape[-1])


def _checked_layer(cache: DynamicCache, layer_idx: int, indices: torch.Tensor, masked: bool) -> DynamicLayer:
    """The cache layer `indices` will rewrite, after checking they fit it (`masked`: someone masks padding)."""
    if not 0 <= layer_idx < len(cache.layers):
        raise ValueError(f"no cache layer {layer_idx}; the cache has {len(cache.layers)} layers")
    layer = cache.layers[layer_idx]
    if isinstance(layer, DynamicSlidingWindowLayer) or not isinstance(layer, DynamicLayer):
        raise TypeError(
            f"layer {layer_idx} is a {type(layer).__name__}; KV compression supports full-attention "
            "DynamicLayer caches only (disable sliding-window attention in the config)"
        )
    if not layer.is_initialized or layer.keys is None:
        raise ValueError(f"cache layer {layer_idx} is empty: compress after the prefill forward pass")
    _check_indices(layer_idx, indices, layer.keys)
    if not masked and bool((indices < 0).any()):
        raise ValueError(
            f"layer {layer_idx}: the kept indices hold padding (-1: some heads keep fewer tokens) and "
            "nothing would mask it when decoding; pass the session: compress_cache(cache, pending, session)"
        )
    return layer


def kv_bytes(
    method: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, scaling: float
) -> dict[str, int]:
    """KV-cache bytes of one layer's prefill (q (B, Hq, L, D), k/v (B, Hkv, L, D)) under a KV method:
    "dense" (the uncompressed cache), "stored" (what the compressed cache holds, padding included) and
    "kept" (real tokens only; below "stored" when heads keep different numbers of tokens). For benchmarks."""
    from sparse_eval.compression import LayerStats

    cache = DynamicCache()
    cache.update(key, value, 0)
    dense = cache_bytes(cache)
    indices = method.select_kv(query, key, value, layer_idx=0, scaling=scaling, stats=LayerStats(0, "kv"))
    if indices is None:
        return {"dense": dense, "stored": dense, "kept": dense}
    compress_cache(cache, {0: indices}, method)
    per_token = 2 * key.shape[-1] * key.element_size()
    return {"dense": dense, "stored": cache_bytes(cache), "kept": int((indices >= 0).sum()) * per_token}


def cache_bytes(cache: DynamicCache) -> int:
    """Bytes the cache's key and value tensors occupy (padding slots included)."""
    total = 0
    for layer in cache.layers:
        for states in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(states, torch.Tensor):
                total += states.numel() * states.element_size()
    return total
