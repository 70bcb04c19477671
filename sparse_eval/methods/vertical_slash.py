"""Vertical-Slash sparse prefill (MInference, Jiang et al., NeurIPS 2024, arXiv 2407.02490)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import torch
import torch.nn.functional as F

from sparse_eval.backends.fused import fused
from sparse_eval.backends.pattern import BlockPattern, tile_pair_counts
from sparse_eval.backends.scan import prefix_sums
from sparse_eval.backends.tile_index import tile_kernels
from sparse_eval.compression import pair_budget
from sparse_eval.methods.estimation import vertical_slash_scores
from sparse_eval.methods.pattern_method import PatternPrefillMethod, check_block_sizes
from sparse_eval.registry import register_method


def diagonal_tile_index(
    num_q_blocks: int, num_kv_blocks: int, ratio: int, device: torch.device
) -> torch.Tensor:
    """u[i, j] = ratio * i - j + ratio - 1: the tile-diagonal of tile (i, j) (0 = the leftmost diagonal tile
    of a query tile when q tiles are `ratio` kv tiles tall). Equal u means the same offset band."""
    i = torch.arange(num_q_blocks, device=device)[:, None]
    j = torch.arange(num_kv_blocks, device=device)[None, :]
    return ratio * i - j + ratio - 1


def diagonal_offset_ranges(
    seq_len: int, q_block: int, kv_block: int, n_diag: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi) long (n_diag,): the query - key offsets that causal pairs of each tile-diagonal cover.
    Ranges of empty tile-diagonals come out with lo > hi."""
    nqb, nkb = math.ceil(seq_len / q_block), math.ceil(seq_len / kv_block)
    i = torch.arange(nqb, device=device)[:, None]
    j = torch.arange(nkb, device=device)[None, :]
    last_row = torch.clamp((i + 1) * q_block, max=seq_len) - 1
    tile_lo = torch.clamp(i * q_block - ((j + 1) * kv_block - 1), min=0)
    tile_hi = last_row - j * kv_block
    valid = (tile_hi >= 0).expand(nqb, nkb)
    u = diagonal_tile_index(nqb, nkb, q_block // kv_block, device).expand(nqb, nkb)
    big = torch.iinfo(torch.int64).max
    lo = torch.full((n_diag,), big, dtype=torch.int64, device=device)
    hi = torch.full((n_diag,), -1, dtype=torch.int64, device=device)
    lo.scatter_reduce_(0, u[valid], tile_lo.expand(nqb, nkb)[valid], reduce="amin")
    hi.scatter_reduce_(0, u[valid], tile_hi.expand(nqb, nkb)[valid], reduce="amax")
    return lo, hi


def _diagonal_tables(
    seq_len: int, q_block: int, kv_block: int, device: torch.device | str
) -> tuple[torch.Tensor, ...]:
    """Shape-only tables of the slash scoring (every layer asks for the same; do not modify them):
      outside: bool (n_diag, q_block + kv_block - 1), the offsets of each tile-diagonal's window that none of
        its causal pairs has (window u starts at offset (u - ratio) * kv_block + 1);
      diag_cost: float64 (n_diag,), the causal pairs of each tile-diagonal;
      causal_tiles: bool (nqb, nkb), tiles that lie on a tile-diagonal and hold a causal pair.
    Cached per shape and device: built with boolean indexing (host syncs), so only the first layer waits."""
    return _diagonal_tables_cached(seq_len, q_block, kv_block, torch.device(device))


@lru_cache(maxsize=8)
def _diagonal_tables_cached(
    seq_len: int, q_block: int, kv_block: int, device: torch.device
) -> tuple[torch.Tensor, ...]:
    ratio = q_block // kv_block
    nqb, nkb = math.ceil(seq_len / q_block), math.ceil(seq_len / kv_block)
    n_diag = nkb + ratio - 1
    window = q_block + kv_block - 1
    lo, hi = diagonal_offset_ranges(seq_len, q_block, kv_block, n_diag, device)
    starts = (torch.arange(n_diag, device=device) - ratio) * kv_block + 1
    offsets = starts[:, None] + torch.arange(window, device=device)[None, :]
    outside = (offsets < lo[:, None]) | (offsets > hi[:, None])
    weights = tile_pair_counts(seq_len, q_block, kv_block, device).to(torch.float64)
    u = diagonal_tile_index(nqb, nkb, ratio, device)
    in_range = (u >= 0) & (u < n_diag)
    diag_cost = torch.zeros(n_diag, dtype=torch.float64, device=device)
    diag_cost.index_add_(0, u[in_range], weights[in_range])
    return outside, diag_cost, in_range & (weights > 0)


@fused
def diagonal_scores(slash: torch.Tensor, outside: torch.Tensor, q_block: int, kv_block: int) -> torch.Tensor:
    """float32 (B, H, n_diag): each tile-diagonal's score, the best slash among the offsets its causal pairs
    cover. Window u starts at offset (u - ratio) * kv_block + 1 and is q_block + kv_block - 1 wide; `outside`
    marks the offsets of each window that none of its pairs has (`_diagonal_tables`)."""
    n_diag, window = outside.shape
    padded = F.pad(slash, (q_block - 1, n_diag * kv_block + window), value=float("-inf"))
    windows = padded.unfold(-1, window, kv_block)[..., :n_diag, :]
    return windows.masked_fill(outside, float("-inf")).amax(-1)


def take_in_order(
    order: torch.Tensor, ordered_score: torch.Tensor, cost: torch.Tensor, budget: torch.Tensor
) -> torch.Tensor:
    """bool like `cost`: entries taken in `order` (descending score; `ordered_score` = the scores in that
    order, as the sort returns them) while their cumulative float64 `cost` stays within `budget` (B, H), plus
    the forced ones (infinite score). Costs are integers: exact sums in any order, so the scan runs in blocks
    (`scan.prefix_sums`); compiled whole, it ran one program per row."""
    cum = prefix_sums(torch.gather(cost, -1, order))
    take = (cum <= budget[..., None]) | torch.isinf(ordered_score)
    return torch.zeros_like(take).scatter_(-1, order, take)


def selected_tiles(diag_sel: torch.Tensor, causal_tiles: torch.Tensor, ratio: int) -> torch.Tensor:
    """bool (B, H, nqb, nkb): the causal tiles of the selected tile-diagonals (compiled inside
    `tiles_and_column_costs`).
    Tile (i, j) lies on tile-diagonal ratio * i + ratio - 1 - j, so row i reads the selection reversed from
    nkb - 1 - ratio * i on: a strided window, with no index table to load per tile."""
    nqb, nkb = causal_tiles.shape
    reverse = F.pad(diag_sel.flip(-1), (0, nkb))  # tile-diagonals past the last one (future tiles): False
    start = nkb - 1 - ratio * (nqb - 1)  # the last row's window; earlier rows start ratio later each
    rows = reverse[..., start:].unfold(-1, nkb, ratio)[..., :nqb, :].flip(-2)
    return rows & causal_tiles


def diagonal_prefix(diag_sel: torch.Tensor, ratio: int) -> torch.Tensor:
    """int64 like `diag_sel`: along[u] = the held tile-diagonals among u, u - ratio, u - 2 ratio, ..."""
    n_diag = diag_sel.shape[-1]
    steps = -(-n_diag // ratio)
    held = F.pad(diag_sel.to(torch.int64), (0, steps * ratio - n_diag)).unflatten(-1, (steps, ratio))
    # Scanned along the innermost dim: torch's scan along an outer dim took 0.1 ms at 128k on an H200.
    along = torch.cumsum(held.transpose(-1, -2).contiguous(), dim=-1).transpose(-1, -2)
    return along.flatten(-2)[..., :n_diag]


def diagonal_column_costs(diag_sel: torch.Tensor, seq_len: int, q_block: int, kv_block: int) -> torch.Tensor:
    """float64 (B, H, L): what each key column costs on top of the tiles of the selected tile-diagonals, i.e.
    `column_costs(blocks, ...)` of every column, without a pass over the (nqb x nkb) tile grid.

    Column c (query tile ic, key tile jb) costs its rows q >= c outside selected tiles. The tiles below it in
    key tile jb are (i, jb), i > ic, all causal, on tile-diagonals u = ratio * i + s with s = ratio - 1 - jb:
    every ratio-th diagonal, so prefix sums along each residue class mod ratio count them in O(1)."""
    L, bq, bk = seq_len, q_block, kv_block
    ratio = bq // bk
    nqb = -(-L // bq)
    held = diag_sel.to(torch.int64)
    along = diagonal_prefix(diag_sel, ratio)
    c = torch.arange(L, device=diag_sel.device)
    ic, jb = c // bq, c // bk
    own = ratio * ic + ratio - 1 - jb  # the tile-diagonal of tile (ic, jb)
    last = ratio * (nqb - 1) + ratio - 1 - jb  # ... of tile (nqb - 1, jb), the lowest in key tile jb
    lead = diag_sel.shape[:-1]

    def at(values: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return torch.gather(values, -1, u.expand(*lead, -1))

    short = bq - (L - (nqb - 1) * bq)  # rows the last query tile lacks
    below = bq * (at(along, last) - at(along, own)) - short * at(held, last)
    below = torch.where(ic < nqb - 1, below, 0)
    own_rows = torch.clamp((ic + 1) * bq, max=L) - c
    return ((L - c) - below - at(held, own) * own_rows).to(torch.float64)


def tiles_and_column_costs(
    diag_sel: torch.Tensor, causal_tiles: torch.Tensor, seq_len: int, q_block: int, kv_block: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`selected_tiles` and `diagonal_column_costs`: on CUDA the Triton kernels of
    `sparse_eval.kernels.diagonal_tiles` (the tile sizes compile-time constants: 0.23 -> 0.05 ms at 128k on an
    H200, BENCHMARKS.md), else one compiled call of the plain functions."""
    module = tile_kernels("diagonal_tiles", diag_sel)
    if module is not None:
        along = diagonal_prefix(diag_sel, q_block // kv_block)
        return module.tiles_and_column_costs(diag_sel, along, seq_len, q_block, kv_block)
    return _tiles_and_column_costs(diag_sel, causal_tiles, seq_len, q_block, kv_block)


@fused
def _tiles_and_column_costs(
    diag_sel: torch.Tensor, causal_tiles: torch.Tensor, seq_len: int, q_block: int, kv_block: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both plain functions in one compiled call (one call's host overhead, not two: at 32k the selection is
    host-bound)."""
    return (
        selected_tiles(diag_sel, causal_tiles, q_block // kv_block),
        diagonal_column_costs(diag_sel, seq_len, q_block, kv_block),
    )


@register_method
@dataclass
class VerticalSlash(PatternPrefillMethod):
    """MInference's vertical-slash pattern: a few key columns every query attends (verticals: sinks, salient
    tokens) plus diagonals at fixed query-key offsets (slashes: local windows, periodic structure).

    Rule, per query head:
      1. Estimate attention from the last `last_q_size` queries (causal softmax). Vertical score of key j =
         summed probability on column j; slash score of offset o = summed probability on the diagonal
         query - key = o. The first `n_sinks` columns and the `n_local` nearest offsets are forced.
      2. Slashes execute as whole tiles, as in MInference's kernel: a tile-diagonal (tiles (i, j) with equal
         `q_block_size/block_size * i - j`) is scored by the best slash crossing it; tile-diagonals are taken
         by descending score while their pairs fit in `(1 - vertical_share)` of the budget.
      3. Verticals execute exactly (gathered columns). A column costs the rows at or after it that no
         selected tile covers; columns are taken by descending score while the rest of the budget lasts.
    Budget = dense causal pairs / `compression` per head, so the achieved compression is within one tile of
    the target; `compression=1` selects everything and reproduces dense attention. The forced sinks and local
    diagonals (three tile-diagonals of 128-row tiles) cost a fixed share at short lengths: at most ~4.1x at
    1k and ~8x at 2k tokens, whatever the request (warned; `q_block_size=64` halves that floor).
    Differences from the seed (sparse_eval/README.md): a pair budget split by `vertical_share` instead of equal
    vertical / slash counts, and slashes executed as 128 x 64 tile-diagonals instead of MInference's 64 x 64.

    Attributes:
        compression: target dense / attended (query, key) pairs.
        last_q_size: queries used to estimate the pattern (seed: 256; MInference: 64).
        n_sinks: leading key columns always kept (seed: 4).
        n_local: nearest diagonals always kept (seed: 64).
        block_size: tile width in keys; slash granularity (seed and MInference: 64).
        q_block_size: tile height in queries. 128 matches the FlexAttention forward tile on H100/H200 for
            d=128 bf16 (128 x 64), so a selected tile is exactly one kernel tile; MInference used 64.
        vertical_share: share of the pair budget for vertical columns (the rest is for slash tiles); 0.5 spends
            about equally, like the seed's equal counts of 512 verticals and 512 slashes.
    """

    compression: float = 1.0
    last_q_size: int = 256
    n_sinks: int = 4
    n_local: int = 64
    block_size: int = 64
    q_block_size: int = 128
    vertical_share: float = 0.5

    name: ClassVar[str] = "vertical_slash"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_block_sizes(self.q_block_size, self.block_size)
        if self.q_block_size % self.block_size:
            raise ValueError(
                f"q_block_size ({self.q_block_size}) must be a multiple of block_size ({self.block_size})"
            )
        if not 0.0 <= self.vertical_share <= 1.0:
            raise ValueError(f"vertical_share must be in [0, 1], got {self.vertical_share}")
        for label in ("last_q_size", "n_sinks", "n_local"):
            if getattr(self, label) < (1 if label == "last_q_size" else 0):
                raise ValueError(
                    f"{label} must be non-negative (last_q_size >= 1), got {getattr(self, label)}"
                )
        if (
            self.n_sinks == 0 and self.n_local == 0
        ):  # a forced sink or the query itself keeps every row attending
            raise ValueError(
                "vertical_slash needs n_sinks >= 1 or n_local >= 1: with neither, a query can be left attending "
                "no key at all (its output would be 0)"
            )

    def select(
        self, query: torch.Tensor, key: torch.Tensor, *, scaling: float, layer_idx: int
    ) -> BlockPattern:
        L = query.shape[-2]
        bq, bk = self.q_block_size, self.block_size
        device = query.device
        vertical, slash = vertical_slash_scores(query, key, scaling, self.last_q_size)
        vertical[..., : self.n_sinks] = float("inf")
        slash[..., : self.n_local] = float("inf")
        budget = float(pair_budget(L, self.compression))

        # Tile-diagonal u crosses the offsets of its causal tiles: one contiguous range inside the window
        # [(u - ratio) * bk + 1, (u - ratio) * bk + bq + bk - 1], clipped where tiles meet the sequence ends.
        outside, diag_cost, causal_tiles = _diagonal_tables(L, bq, bk, device)
        diag_score = diagonal_scores(slash, outside, bq, bk)
        ordered, order = torch.sort(diag_score, dim=-1, descending=True, stable=True)
        slash_budget = budget * (1.0 - self.vertical_share)
        slash_budget = torch.full(diag_score.shape[:-1], slash_budget, dtype=torch.float64, device=device)
        diag_sel = take_in_order(order, ordered, diag_cost.expand_as(diag_score), slash_budget)
        blocks, cost = tiles_and_column_costs(diag_sel, causal_tiles, L, bq, bk)

        # Verticals: exact columns with their marginal cost, within what the tiles left of the budget.
        tile_pairs = (diag_sel.to(torch.float64) * diag_cost).sum(-1)  # = pairs of `blocks`, exactly
        v_ordered, v_order = torch.sort(vertical, dim=-1, descending=True, stable=True)
        col_sel = take_in_order(v_order, v_ordered, cost, budget - tile_pairs) & (cost > 0)
        pairs = tile_pairs + torch.where(col_sel, cost, 0.0).sum(-1)  # integers in float64: exact
        # Offset 0 lies in every diagonal tile, so forcing the nearest n_local >= 1 offsets selects them all.
        return BlockPattern(
            L, bq, bk, blocks, column_mask=col_sel, pairs=pairs, diagonal_tiles_held=self.n_local >= 1
        )
