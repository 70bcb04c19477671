"""Quest: query-aware page selection for decoding (Tang et al., ICML 2024, arXiv 2406.10774).

The cache is cut into pages of consecutive keys; each page is summarised by the elementwise minimum and
maximum of its keys. For a decoding query q, `sum_d max(q_d * min_d, q_d * max_d)` is an upper bound of
q·k over every key of the page, so the pages with the largest bounds are the ones that can hold the
largest attention logits. The new token attends only to the chosen pages plus the page it belongs to.
Prefill is dense. The page summaries of a sequence are built once at prefill and extended as pages fill
up during decoding, so a decode step reads the summaries and the chosen pages, not the whole cache.

Selection rule, shared by every path (torch, masked reference, Triton kernels): a page's score is its bound
accumulated in float64 and rounded to float32 (the products are exact in float64, so the summation order of a
path does not change the float32 score); the k best scores win, and among equal scores the later page wins.
On CUDA with triton installed the step runs as fused kernels (`sparse_eval.kernels.quest_decode`); elsewhere
as torch ops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import ModuleType
from typing import ClassVar

import torch
import torch.nn.functional as F

from sparse_eval.base import SparseMethod
from sparse_eval.compression import LayerStats, head_counts
from sparse_eval.kernels import quest_kernels
from sparse_eval.registry import register_method


def page_summaries(key: torch.Tensor, page_size: int) -> torch.Tensor:
    """Quest's page summaries of every *full* page: k (B, H, L, D) -> (B, H, L // page_size, 2D) in the keys'
    dtype, the elementwise max keys of a page followed by its elementwise min keys.

    A trailing partial page has no summary: it is always the current page, which Quest keeps anyway.
    A max or min of keys is one of the keys, so the keys' dtype holds it exactly; the summaries read per step
    are 1/8 of the cache at 16-key pages."""
    batch, heads, length, dim = key.shape
    full = length // page_size
    pages = key[:, :, : full * page_size].reshape(batch, heads, full, page_size, dim)
    return torch.cat([pages.amax(dim=3), pages.amin(dim=3)], dim=-1)


def page_scores(query: torch.Tensor, summaries: torch.Tensor, share_pages: bool = True) -> torch.Tensor:
    """Quest's upper bound of q·k per page: summed over the query heads of each GQA group (B, Hkv, P), or
    per query head (B, Hq, P) with `share_pages=False`; float32.

    q (B, Hq, 1, D), summaries (B, Hkv, P, 2D). Since max >= min, max(q·min, q·max) = q⁺·max + q⁻·min per
    channel; that is linear in (q⁺, q⁻), so the group sum of the bounds is one matrix-vector product with
    the group sums of q⁺ and q⁻. Summing over the group lets one set of pages serve every query head that
    shares the KV head. Accumulated in float64 and rounded once to float32, so that the Triton kernel, which
    sums in another order, gets the same float32 scores."""
    batch, q_heads, _, dim = query.shape
    kv_heads = summaries.shape[1]
    q = query[:, :, -1].double().reshape(batch, kv_heads, q_heads // kv_heads, dim)
    positive = q.clamp_min(0)
    split = torch.cat([positive, q - positive], dim=-1)  # (B, Hkv, group, 2D)
    bounds = summaries.double()
    if share_pages:
        return (bounds @ split.sum(dim=2)[..., None]).squeeze(-1).float()
    return (split @ bounds.transpose(-1, -2)).reshape(batch, q_heads, -1).float()


def rank_keys(scores: torch.Tensor) -> torch.Tensor:
    """int64 keys that order pages by float32 score, ties by page index (the later page ranks higher): the
    score's bits made order-preserving as int32, times 2^32, plus the page index. Distinct per page, so a
    top-k over them has no ties left to break arbitrarily."""
    bits = scores.contiguous().view(torch.int32)
    bits = bits.masked_fill(bits == -(2**31), 0)  # -0.0 ranks as +0.0
    ordered = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    index = torch.arange(scores.shape[-1], device=scores.device)
    return ordered.long() * 2**32 + index


def budget_pages(kv_len: int, compression: float, page_size: int) -> int:
    """How many pages besides the current one a step attends, so that the attended tokens (those pages plus
    the possibly partial current page) come as close as possible to kv_len / compression."""
    num_pages = math.ceil(kv_len / page_size)
    current_len = kv_len - (num_pages - 1) * page_size
    extra = math.floor((kv_len / compression - current_len) / page_size + 0.5)
    return max(0, min(num_pages - 1, extra))


def select_tokens(
    query: torch.Tensor,
    summaries: torch.Tensor,
    kv_len: int,
    compression: float,
    page_size: int,
    share_pages: bool = True,
) -> torch.Tensor:
    """Token positions each KV head (B, Hkv, n), or each query head with `share_pages=False` (B, Hq, n),
    attends, in no particular order: the tokens of the best-ranked earlier pages (ties: the later page), then
    those of the current (last, possibly partial) page.

    `summaries` must cover at least the pages before the current one."""
    num_pages = math.ceil(kv_len / page_size)
    current = num_pages - 1
    extra = budget_pages(kv_len, compression, page_size)
    batch, heads = summaries.shape[0], summaries.shape[1] if share_pages else query.shape[1]
    if extra == current:  # the budget covers every page: nothing to rank
        return torch.arange(kv_len, device=query.device).expand(batch, heads, kv_len)
    scores = page_scores(query, summaries[:, :, :current], share_pages)
    chosen = rank_keys(scores).topk(extra, dim=-1, sorted=False).indices
    offsets = torch.arange(page_size, device=chosen.device)
    tokens = (chosen[..., None] * page_size + offsets).flatten(-2)
    tail = torch.arange(current * page_size, kv_len, device=chosen.device).expand(batch, heads, -1)
    return torch.cat([tokens, tail], dim=-1)


def gathered_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, tokens: torch.Tensor, scaling: float
) -> torch.Tensor:
    """Fast path: gather the selected keys/values (tokens per KV head, or per query head), then plain SDPA
    (GQA without repeat). Reads only the selected tokens, which is what makes sparse decoding cheaper."""
    batch, kv_heads, length, dim = key.shape
    if tokens.shape[1] != kv_heads:  # per query head: index each head's KV rows without repeating the cache
        group = tokens.shape[1] // kv_heads
        rows = (torch.arange(batch, device=key.device)[:, None] * kv_heads) + torch.arange(
            tokens.shape[1], device=key.device
        )[None, :] // group
        k = key.reshape(batch * kv_heads, length, dim)[rows[..., None], tokens]
        v = value.reshape(batch * kv_heads, length, dim)[rows[..., None], tokens]
        return F.scaled_dot_product_attention(query, k, v, scale=scaling)
    index = tokens[..., None].expand(-1, -1, -1, dim)
    k, v = key.gather(2, index), value.gather(2, index)
    return F.scaled_dot_product_attention(query, k, v, scale=scaling, enable_gqa=query.shape[1] != kv_heads)


def masked_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, tokens: torch.Tensor, scaling: float
) -> torch.Tensor:
    """Reference path: a boolean mask over the whole cache, expanded to the query heads, and masked SDPA."""
    batch, kv_heads, length, _ = key.shape
    keep = torch.zeros(batch, tokens.shape[1], length, dtype=torch.bool, device=key.device)
    keep.scatter_(2, tokens, True)
    mask = keep.repeat_interleave(query.shape[1] // tokens.shape[1], dim=1)[:, :, None, :]
    return F.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, scale=scaling, enable_gqa=query.shape[1] != kv_heads
    )


def quest_decode_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *,
    scaling: float,
    compression: float,
    page_size: int = 16,
    summaries: torch.Tensor | None = None,
    gather: bool = True,
    share_pages: bool = True,
    fused: bool | None = None,
) -> tuple[torch.Tensor, int]:
    """One Quest decode step: (attention output (B, Hq, 1, D), attended tokens per head).

    `summaries` (from `page_summaries`) must cover at least the pages before the current one; they are
    computed from `key` when omitted, which reads the whole cache: pass them when timing, as the method
    keeps them from step to step. `gather=False` runs the masked reference. Otherwise `fused` picks the
    Triton kernels (True), the torch ops (False), or the kernels when the tensors are on CUDA, triton
    imports and the shapes are supported (None); all select the same pages."""
    kv_len = key.shape[-2]
    if summaries is None:
        summaries = page_summaries(key, page_size)
    kernels = fused_kernels(query, key, value, page_size) if gather and fused is not False else None
    if fused and kernels is None:
        raise ValueError(
            "fused Quest decode needs triton, gather=True, a power-of-two page_size, head dim 16-256 and "
            "float16/bfloat16/float32 tensors; pass fused=None to fall back to the torch path"
        )
    if kernels is not None and (fused or query.is_cuda):
        extra = budget_pages(kv_len, compression, page_size)
        out = kernels.quest_decode(
            query,
            key,
            value,
            summaries,
            extra=extra,
            page_size=page_size,
            share_pages=share_pages,
            scaling=scaling,
        )
        return out, extra * page_size + kv_len - (math.ceil(kv_len / page_size) - 1) * page_size
    tokens = select_tokens(query, summaries, kv_len, compression, page_size, share_pages)
    attend = gathered_attention if gather else masked_attention
    return attend(query, key, value, tokens, scaling), tokens.shape[-1]


def fused_kernels(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, page_size: int
) -> ModuleType | None:
    """The Triton Quest kernels module when triton imports and it supports these tensors, else None."""
    kernels = quest_kernels()
    return kernels if kernels is not None and kernels.supported(query, key, value, page_size) else None


@register_method
@dataclass
class Quest(SparseMethod):
    """Quest (Tang et al., "Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference", ICML 2024).

    Decode-only: prefill is dense. Each decode step ranks the pages before the current one by Quest's
    upper bound and attends the best ones plus the current page.

    Attributes:
        compression: dense cached tokens / attended tokens per decode step. The page budget is chosen per
            step from the current cache length, so the ratio holds as the cache grows (to within half a page).
        page_size: keys per page (seed setting 16). Smaller pages select more precisely but cost more
            summaries to score.
        share_pages: True (the seed repo's default since commit 13b8288, after the paper's v1): the query
            heads of a GQA group sum their bounds and share one page set, so a KV head's pages are read once.
            False: each query head ranks its own pages, as the v1 experiments and the original Quest (an MHA
            method) did; more precise per head, group-size times the pages read.

    The original Quest also keeps the first two layers dense; the seed does not, and neither does this method
    (every layer is sparse).
    """

    page_size: int = 16
    share_pages: bool = True

    name: ClassVar[str] = "quest"
    phase: ClassVar[str] = "decode"

    _summaries: dict[int, torch.Tensor] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.page_size, int) or self.page_size < 1:
            raise ValueError(f"quest page_size must be a positive integer, got {self.page_size!r}")
        if not isinstance(self.share_pages, bool):
            raise ValueError(f"quest share_pages must be True or False, got {self.share_pages!r}")

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
        """Dense prefill; also starts this layer's page summaries for the new sequence."""
        self._summaries[layer_idx] = page_summaries(key, self.page_size)
        return super().prefill(query, key, value, layer_idx=layer_idx, scaling=scaling, stats=stats)

    def _page_summaries(self, key: torch.Tensor, layer_idx: int) -> torch.Tensor:
        """Summaries of every full page of `key`, extending the stored ones by the pages filled since."""
        full = key.shape[-2] // self.page_size
        known = self._summaries.get(layer_idx)
        if known is None or known.shape[2] > full or known.shape[:2] != key.shape[:2]:
            known = page_summaries(key, self.page_size)  # no prefill seen for this sequence: start over
        elif known.shape[2] < full:
            start = known.shape[2] * self.page_size
            fresh = page_summaries(key[:, :, start : full * self.page_size], self.page_size)
            known = torch.cat([known, fresh], dim=2)
        self._summaries[layer_idx] = known
        return known

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
        """Attend the selected pages; records cached vs attended tokens per query head. At compression 1 the
        budget covers every page, so the same code path attends the whole cache (and equals dense). On CUDA
        with triton the step runs as Triton kernels, else as torch ops; backend="reference" runs the masked
        reference."""
        kv_len = key.shape[-2]
        out, attended = quest_decode_attention(
            query,
            key,
            value,
            scaling=scaling,
            compression=self.compression,
            page_size=self.page_size,
            summaries=self._page_summaries(key, layer_idx),
            gather=self.resolve_backend(query) != "reference",
            share_pages=self.share_pages,
        )
        heads = query.shape[1]
        stats.add(head_counts(heads, kv_len), head_counts(heads, attended))
        return out
