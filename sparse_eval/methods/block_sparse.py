"""Block-sparse prefill: each query tile keeps its top-k key tiles by mean-pooled q.k, with the sink tile and
the local tiles always kept (seed paper's Block-Sparse, after MInference's block-sparse pattern; Nawrot et
al. 2025, arXiv 2504.17768)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import torch

from sparse_eval.backends.pattern import BlockPattern, tile_kinds, tile_pair_counts
from sparse_eval.backends.tile_index import index_from_scores, kernel_for, tile_codes, tile_kernels
from sparse_eval.compression import pair_budget
from sparse_eval.methods.pattern_method import PatternPrefillMethod, check_block_sizes
from sparse_eval.registry import register_method


def mean_pool(x: torch.Tensor, block: int) -> torch.Tensor:
    """Mean over consecutive blocks of `block` positions of (B, H, L, D); the last block may be shorter."""
    L = x.shape[-2]
    n = math.ceil(L / block)
    padded = torch.nn.functional.pad(x, (0, 0, 0, n * block - L)) if n * block != L else x
    sums = padded.unflatten(-2, (n, block)).sum(-2, dtype=torch.float32)
    means = sums / block
    if L % block:  # the shorter last block: its own count (no per-block size table: fewer small ops)
        means[..., -1, :] = sums[..., -1, :] / (L % block)
    return means


def tiles_per_row(
    seq_len: int,
    q_block: int,
    kv_block: int,
    sink_blocks: int,
    local_blocks: int,
    budget: int,
    device: torch.device | str = "cpu",
) -> tuple[int, list[int]]:
    """(k, keep): the per-row tile count k (forced tiles included) whose total causal pairs is closest to
    `budget` (the smallest such k on a tie), and the tiles each query row keeps, max(forced, min(k, causal)).

    Non-forced causal tiles lie strictly below the diagonal, so each is full and the total is piecewise
    linear in k: summed exactly in int64 from slope changes, without an (n_k, n_rows) table. Cached per
    shape, budget and device: every layer of a prefill asks the same question, so only the first one waits
    for the device.
    """
    return _tiles_per_row(seq_len, q_block, kv_block, sink_blocks, local_blocks, budget, torch.device(device))


@lru_cache(maxsize=64)
def _tiles_per_row(
    seq_len: int,
    q_block: int,
    kv_block: int,
    sink_blocks: int,
    local_blocks: int,
    budget: int,
    device: torch.device,
) -> tuple[int, list[int]]:
    weights = tile_pair_counts(seq_len, q_block, kv_block, device)
    forced = forced_tiles(seq_len, q_block, kv_block, sink_blocks, local_blocks, device)
    causal = weights > 0
    n_causal, n_forced = causal.sum(-1), forced.sum(-1)
    forced_pairs = (weights * forced).sum()
    full_pairs = torch.where(causal & ~forced, weights, torch.zeros_like(weights)).amax(-1)
    top = int(n_causal.max())
    # row r adds full_pairs[r] for each k in (n_forced[r], n_causal[r]]: a slope change at both ends
    slope = torch.zeros(top + 2, dtype=torch.int64, device=device)
    grows = n_causal > n_forced
    slope.index_add_(0, (n_forced + 1)[grows], full_pairs[grows])
    slope.index_add_(0, (n_causal + 1)[grows], -full_pairs[grows])
    totals = forced_pairs + torch.cumsum(torch.cumsum(slope, 0), 0)[1 : top + 1]  # k = 1 .. top
    k = int(torch.argmin((totals - budget).abs())) + 1
    keep = torch.maximum(n_forced, torch.clamp(n_causal, max=k))
    return k, keep.tolist()


@lru_cache(maxsize=16)
def _row_keep(keep: tuple[int, ...], device: torch.device) -> torch.Tensor:
    return torch.tensor(keep, dtype=torch.int64, device=device)


def forced_tiles(
    seq_len: int, q_block: int, kv_block: int, sink_blocks: int, local_blocks: int, device: torch.device
) -> torch.Tensor:
    """Cached per shape and device (every layer asks for the same table); do not modify the result."""
    return _forced_tiles(seq_len, q_block, kv_block, sink_blocks, local_blocks, torch.device(device))


@lru_cache(maxsize=8)
def _forced_tiles(
    seq_len: int, q_block: int, kv_block: int, sink_blocks: int, local_blocks: int, device: torch.device
) -> torch.Tensor:
    """bool (nqb, nkb): the tiles every query tile keeps whatever their score. The diagonal tiles (partly
    causal: they hold each query's own position), the first `sink_blocks` key tiles (attention sinks) and the
    `local_blocks` key tiles just before the diagonal (the local band), clipped to the causal tiles."""
    causal, full = tile_kinds(seq_len, q_block, kv_block, device)
    nqb, nkb = causal.shape
    first_diag = (torch.arange(nqb, device=device) * q_block // kv_block)[
        :, None
    ]  # tile of a row's 1st query
    j = torch.arange(nkb, device=device)[None, :]
    local = (j < first_diag) & (j >= first_diag - local_blocks)
    return causal & (~full | (j < sink_blocks) | local)


@register_method
@dataclass
class BlockSparse(PatternPrefillMethod):
    """Block-sparse attention with a fixed number of key tiles per query tile.

    Rule, per query head: mean-pool queries over tiles of `q_block_size` and keys over tiles of `block_size`;
    score every causal tile by pooled q . pooled k; each query tile keeps its k best key tiles. Forced into
    every row, as in the seed's index builder: the first key tile (attention sinks), the diagonal tiles (which
    hold the query's own position) and the key tile just before them (the seed's "sub-diagonal" block, the
    local band). Like the seed, k is one number for all rows (early rows with fewer than k causal tiles keep
    them all), chosen as the k whose attended pairs are closest to dense / `compression`; `compression=1`
    keeps every tile and reproduces dense attention.

    Tiles default to the seed's 16 x 16 chunks. The tile is part of the rule, not only of the kernel: pooled
    over 128 x 64 tiles, a needle or a salient column is diluted 32x more and every kept tile spends 8192
    pairs, so at equal compression the error is several times the seed's (measured in `sparse_eval/README.md`:
    synthetic structure at 32k, c = 10). `q_block_size=128, block_size=64` (one FlexAttention kernel tile per
    selected tile) remains as the fast, coarser option; `benchmarks/bench_fidelity.py` and
    `benchmarks/bench_attention.py` measure both sides of that trade-off.

    The forced tiles set a floor on the cost: a query tile always attends its sink, local and diagonal tiles,
    so at short lengths large targets are out of reach (measured on SmolLM2 story prompts: at most 12.9x at 1k
    with 16 x 16 tiles; 2.9x at 1k and 5.5x at 2k with 128 x 64 tiles). The report records what was achieved and `sparse_eval.apply` warns when it falls far below
    the request.

    Attributes:
        compression: target dense / attended (query, key) pairs.
        block_size: key tile width (seed: 16; multiples of 16).
        q_block_size: query tile height (seed: 16). 128 with `block_size=64` matches the FlexAttention forward
            tile on H100/H200 (d=128, bf16): faster, less faithful.
        sink_blocks: leading key tiles every query tile keeps (seed: 1, the attention sink). 0 with
            `local_blocks=0` is this package's pre-audit rule (only the diagonal forced), kept for comparison.
        local_blocks: key tiles right before the diagonal every query tile keeps (seed: 1, its sub-diagonal).
    """

    compression: float = 1.0
    block_size: int = 16
    q_block_size: int = 16
    sink_blocks: int = 1
    local_blocks: int = 1

    name: ClassVar[str] = "block_sparse"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_block_sizes(self.q_block_size, self.block_size)
        for label in ("sink_blocks", "local_blocks"):
            value = getattr(self, label)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"block_sparse {label} must be a non-negative integer, got {value!r}")

    def select(
        self, query: torch.Tensor, key: torch.Tensor, *, scaling: float, layer_idx: int
    ) -> BlockPattern:
        L = query.shape[-2]
        bq, bk = self.q_block_size, self.block_size
        device = query.device
        scores = pooled_scores(query, key, bq, bk)
        budget = pair_budget(L, self.compression)
        module = kernel_for(scores, scores.shape[-1])
        if module is not None:  # one row kernel: top-k per row straight to block-mask indices
            codes, take = _kernel_tables(L, bq, bk, self.sink_blocks, self.local_blocks, budget, device)
            return BlockPattern(L, bq, bk, tiles=index_from_scores(module, scores, codes, take, L, bq, bk))
        causal, _ = tile_kinds(L, bq, bk, device)
        forced = forced_tiles(L, bq, bk, self.sink_blocks, self.local_blocks, device)
        scores = scores.masked_fill(~causal, float("-inf")).masked_fill(forced, float("inf"))
        _, keep_list = tiles_per_row(L, bq, bk, self.sink_blocks, self.local_blocks, budget, device)
        keep = _row_keep(tuple(keep_list), device)
        return BlockPattern(L, bq, bk, top_per_row(scores, keep, max(keep_list)) & causal)


def pooled_scores(query: torch.Tensor, key: torch.Tensor, q_block: int, kv_block: int) -> torch.Tensor:
    """Mean-pooled q . mean-pooled k per tile, float32 (B, Hq, nqb, nkb). Unscaled: a positive scale does not
    change any row's order, and the rule only ranks. Each KV head's query group is one matrix product (GQA
    heads of a group are consecutive), so pooled keys are not repeated per query head."""
    B, Hq = query.shape[:2]
    Hkv = key.shape[1]
    pooled_q = mean_pool(query, q_block)  # (B, Hq, nqb, D)
    pooled_k = mean_pool(key, kv_block)  # (B, Hkv, nkb, D)
    nqb, nkb = pooled_q.shape[-2], pooled_k.shape[-2]
    grouped = pooled_q.reshape(B, Hkv, (Hq // Hkv) * nqb, -1)
    return tile_products(grouped, pooled_k).view(B, Hq, nqb, nkb)


_products_failed = False


def tile_products(
    pooled_q: torch.Tensor, pooled_k: torch.Tensor, scale: float = 1.0, causal_period: int | None = None
) -> torch.Tensor:
    """(pooled_q @ pooled_k^T) * scale in float32 for (..., M, D) and (..., N, D): on CUDA the 3xTF32
    tensor-core kernel (`sparse_eval.kernels.tile_products`, float32-level error, faster than cuBLAS's
    float32), elsewhere or without triton torch.matmul. `causal_period`: row r is query tile r % causal_period
    and its entries for later key tiles are -inf (the kernel skips them). A kernel that fails at runtime warns
    once and torch runs from then on."""
    global _products_failed
    module = None if _products_failed else tile_kernels("tile_products", pooled_q)
    if module is not None and module.supports(pooled_q, pooled_k):
        try:
            return module.products(pooled_q, pooled_k, scale, causal_period)
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as error:  # e.g. a compile error on some GPU
            _products_failed = True
            warnings.warn(
                f"the tile-products kernel failed ({type(error).__name__}: {error}); using torch.matmul",
                RuntimeWarning,
                stacklevel=2,
            )
    out = torch.matmul(pooled_q, pooled_k.transpose(-1, -2))
    if scale != 1.0:
        out = out * scale
    if causal_period is not None:
        tile = torch.arange(out.shape[-2], device=out.device) % causal_period
        future = torch.arange(out.shape[-1], device=out.device)[None, :] > tile[:, None]
        out = out.masked_fill(future, float("-inf"))
    return out


@lru_cache(maxsize=16)
def _kernel_tables(
    seq_len: int, q_block: int, kv_block: int, sink: int, local: int, budget: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes, take) for the row kernel: tile kinds with the forced full tiles marked, and per row the
    candidate tiles to take on top of the forced ones (keep[r] - forced[r]; keep[r] >= forced[r])."""
    forced = forced_tiles(seq_len, q_block, kv_block, sink, local, device)
    _, keep = tiles_per_row(seq_len, q_block, kv_block, sink, local, budget, device)
    take = torch.tensor(keep, dtype=torch.int32, device=device) - forced.sum(-1, dtype=torch.int32)
    return tile_codes(seq_len, q_block, kv_block, device, forced), take


_CHUNK_ELEMENTS = 1 << 28  # score elements per chunk of heads (bounded memory at 16 x 16 tiles and 128k)


def top_per_row(scores: torch.Tensor, keep: torch.Tensor, most: int) -> torch.Tensor:
    """bool mask of the `keep[r]` best entries of each row r of `scores` (..., R, N), ties broken towards the
    lower index: exactly the first keep[r] entries of a stable descending sort, found with one top-k (the
    keep[r]-th value per row) instead of a full sort and a scatter. `most` = max(keep), known on the host."""
    rows = scores.shape[:-2].numel() if scores.dim() > 2 else 1
    flat = scores.reshape(rows, *scores.shape[-2:])
    per_head = flat[0].numel() if rows else 1
    chunk = max(1, _CHUNK_ELEMENTS // max(1, per_head))
    out = torch.empty(flat.shape, dtype=torch.bool, device=scores.device)
    want = keep.view(-1, 1)
    for h0 in range(0, rows, chunk):  # a few chunks of heads, not a loop over heads
        s = flat[h0 : h0 + chunk]
        kth = torch.topk(s, most, dim=-1).values.gather(-1, (want - 1).expand(s.shape[0], -1, 1))
        greater = s > kth
        tie = s == kth
        need = want - greater.sum(-1, keepdim=True, dtype=torch.int32)
        out[h0 : h0 + chunk] = greater | (tie & (torch.cumsum(tie, -1, dtype=torch.int32) <= need))
    return out.reshape(scores.shape)
