"""SnapKV: keep the KV tokens the prompt's last queries attend to (Li et al., NeurIPS 2024, arXiv 2404.14469).

After a dense prefill, the attention of the last `window` prompt queries (the "observation window") to every
prompt position predicts which positions later tokens will attend to. Each KV head keeps a fixed number of
positions: a few sink tokens at the start, the most recent tokens, and the best-scored positions in between.
The scoring helpers here are shared with Ada-SnapKV (`ada_snapkv.py`), which differs only in how it reduces
the window and spreads the budget.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from sparse_eval.compression import LayerStats
from sparse_eval.methods.kv_compress import KVCompressionMethod
from sparse_eval.registry import register_method


def observation_scores(
    query: torch.Tensor,
    key: torch.Tensor,
    *,
    window: int,
    scaling: float,
    reduce: Literal["mean", "max"],
) -> torch.Tensor:
    """Attention probabilities of the last `window` queries to every position, reduced over those queries and
    over the query heads of each GQA group: q (B, Hq, L, D), k (B, Hkv, L, D) -> (B, Hkv, L) float32.

    Window queries see keys causally (query at position p sees keys <= p). One KV head is processed at a
    time so the (window, L) probability block stays small at long lengths."""
    batch, q_heads, length, _ = query.shape
    kv_heads = key.shape[1]
    group = q_heads // kv_heads
    w = min(window, length)
    rows = torch.arange(length - w, length, device=query.device)[:, None]
    future = torch.arange(length, device=query.device)[None, :] > rows  # (w, L)
    out = torch.empty(batch, kv_heads, length, dtype=torch.float32, device=query.device)
    for h in range(kv_heads):
        q = query[:, h * group : (h + 1) * group, length - w :].float()  # (B, g, w, D)
        logits = (q @ key[:, h : h + 1].float().transpose(-1, -2)) * scaling  # (B, g, w, L)
        probs = logits.masked_fill(future, float("-inf")).softmax(dim=-1)
        if reduce == "mean":
            out[:, h] = probs.mean(dim=(1, 2))
        elif reduce == "max":
            out[:, h] = probs.amax(dim=(1, 2))
        else:
            raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    return out


def pool_scores(scores: torch.Tensor, kernel: int) -> torch.Tensor:
    """1-D average pooling along positions (stride 1, zero padding counted, same length): SnapKV's smoothing,
    which keeps neighbours of an important token so that kept spans stay contiguous."""
    if kernel <= 1:
        return scores
    shape = scores.shape
    flat = scores.reshape(-1, 1, shape[-1])
    return F.avg_pool1d(flat, kernel_size=kernel, stride=1, padding=kernel // 2).reshape(shape)


def kv_capacity(kv_len: int, compression: float) -> int:
    """Tokens a KV head keeps: kv_len / compression rounded, at least 1, at most kv_len."""
    return max(1, min(kv_len, int(kv_len / compression + 0.5)))


def forced_counts(capacity: int, sink: int, local: int) -> tuple[int, int]:
    """(sink, local) tokens always kept. When the capacity is smaller than sink + local (short prompts at high
    compression) the sinks come first and the recent tokens fill what is left, so the budget still holds, but
    nothing is chosen by score any more (the seed refuses this case: it asserts capacity > local + sink), so
    that is warned about."""
    if capacity <= sink + local:
        warnings.warn(
            f"KV capacity of {capacity} tokens per head does not exceed sink ({sink}) + local ({local}): only the "
            "first and the most recent tokens are kept, none by score (the method degenerates to a sliding "
            "window); use a lower compression, a longer prompt, or smaller sink/local",
            RuntimeWarning,
            stacklevel=2,
        )
    n_sink = min(sink, capacity)
    return n_sink, min(local, capacity - n_sink)


def protect(scores: torch.Tensor, n_sink: int, n_local: int) -> torch.Tensor:
    """A copy of `scores` with the sink and recent positions set to +inf, so top-k always takes them."""
    out = scores.clone()
    out[..., :n_sink] = float("inf")
    if n_local:
        out[..., -n_local:] = float("inf")
    return out


def snapkv_select(scores: torch.Tensor, capacity: int, sink: int, local: int) -> torch.Tensor:
    """SnapKV's rule on pooled scores (B, Hkv, L): per head, sinks + recent + the top-scored rest, `capacity`
    positions in all, returned ascending as (B, Hkv, capacity)."""
    length = scores.shape[-1]
    if capacity >= length:
        return torch.arange(length, device=scores.device).expand(*scores.shape[:-1], length)
    n_sink, n_local = forced_counts(capacity, sink, local)
    ranked = protect(scores, n_sink, n_local)
    return ranked.topk(capacity, dim=-1).indices.sort(dim=-1).values


def snapkv_select_indices(
    query: torch.Tensor,
    key: torch.Tensor,
    *,
    compression: float,
    scaling: float,
    window: int = 256,
    pool_kernel: int = 21,
    sink: int = 4,
    local: int = 128,
) -> torch.Tensor:
    """End to end SnapKV selection from prefill q (B, Hq, L, D) and k (B, Hkv, L, D): kept positions
    (B, Hkv, capacity). The callable to time for selection cost; gather with `kv_cache.gather_kv`."""
    length = key.shape[-2]
    capacity = kv_capacity(length, compression)
    if capacity >= length:
        return torch.arange(length, device=key.device).expand(*key.shape[:2], length)
    scores = observation_scores(query, key, window=window, scaling=scaling, reduce="mean")
    return snapkv_select(pool_scores(scores, pool_kernel), capacity, sink, local)


def check_window_args(method: str, window: int, pool_kernel: int, sink: int, local: int) -> None:
    """Validate the shared SnapKV-family hyperparameters with errors that name the bad value."""
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"{method} window must be a positive integer, got {window!r}")
    if not isinstance(pool_kernel, int) or pool_kernel < 1 or pool_kernel % 2 == 0:
        raise ValueError(f"{method} pool_kernel must be an odd integer >= 1 (e.g. 21), got {pool_kernel!r}")
    for label, value in (("sink", sink), ("local", local)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{method} {label} must be a non-negative integer, got {value!r}")


@register_method
@dataclass
class SnapKV(KVCompressionMethod):
    """SnapKV (Li et al., "SnapKV: LLM Knows What You are Looking for Before Generation", NeurIPS 2024).

    KV-cache compression after a dense prefill; decoding then attends the whole (smaller) cache, and the
    report's "decode" phase records (prompt + generated) / (kept + generated) tokens per step.

    Attributes:
        compression: prompt tokens / kept tokens, the same for every KV head and layer (fixed budget):
            each KV head keeps round(L / compression) positions, sinks and recent tokens included.
        window: number of last prompt queries whose attention scores the positions (seed: 256).
        pool_kernel: width of the average pooling over positions (seed: 21; odd).
        sink: first positions always kept (seed: 4), attention sinks.
        local: most recent positions always kept (seed: 128).

    Scores are attention probabilities averaged over the window and over the query heads of a GQA group, so
    the group shares one kept set, which is what a shared KV head needs.
    """

    window: int = 256
    pool_kernel: int = 21
    sink: int = 4
    local: int = 128

    name: ClassVar[str] = "snapkv"
    phase: ClassVar[str] = "kv"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_window_args(self.name, self.window, self.pool_kernel, self.sink, self.local)

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
        """Kept positions (B, Hkv, capacity); records prompt vs kept tokens per KV head."""
        indices = snapkv_select_indices(
            query,
            key,
            compression=self.compression,
            scaling=scaling,
            window=self.window,
            pool_kernel=self.pool_kernel,
            sink=self.sink,
            local=self.local,
        )
        kept = torch.full(indices.shape[:2], indices.shape[-1], dtype=torch.long, device=indices.device)
        self._remember(layer_idx, kept, key.shape[-2], stats)
        return indices
