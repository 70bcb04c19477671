"""FlexPrefill's selection rule on an estimate: pattern choice per head, gamma solved for a pair budget, and
the tiles, all on the device without a host sync (`sparse_eval.methods.flexprefill` holds the method)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from sparse_eval.backends.fused import fused
from sparse_eval.backends.pattern import tile_kinds, tile_pair_counts
from sparse_eval.backends.tile_index import tile_kernels
from sparse_eval.methods.block_sparse import tile_products

_GRID_POINTS = 64  # gamma candidates evaluated at once
_GRID_ROUNDS = 2  # zoom rounds: gamma resolved to about (1/63)^2


def sqrt_js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """sqrt of the Jensen-Shannon divergence (natural log) between distributions on the last dim."""
    m = (p + q) / 2

    def kl(a: torch.Tensor) -> torch.Tensor:
        return torch.where(a > 0, a * torch.log(a / m.clamp_min(1e-30)), torch.zeros_like(a)).sum(-1)

    return torch.sqrt(torch.clamp(0.5 * kl(p) + 0.5 * kl(q), min=0))


def sum_pool(x: torch.Tensor, block: int) -> torch.Tensor:
    """Sum over consecutive blocks of the last dim (the last block may be shorter)."""
    n = math.ceil(x.shape[-1] / block)
    if n * block != x.shape[-1]:  # padding by 0 entries would still copy x (8 us a call at 128k on an H200)
        x = torch.nn.functional.pad(x, (0, n * block - x.shape[-1]))
    return x.unflatten(-1, (n, block)).sum(-1)


@dataclass(frozen=True)
class Rule:
    """The shape and knobs of one layer's selection (plain numbers, so a compiled solver can specialise)."""

    seq_len: int
    block: int
    min_blocks: int
    tau: float
    gamma: float | None


@dataclass
class Estimate:
    """What the rule reads from the inputs, heads flattened to R = B * Hq rows: vertical and slash
    probabilities (R, L) averaged over the last queries, the mean of those queries (R, D), and the pooled
    keys (B, Hkv, nb, D) and queries (B, Hq, nb, D; None when no head can be query-aware), float32."""

    vertical: torch.Tensor
    slash: torch.Tensor
    pooled_k: torch.Tensor
    last_q: torch.Tensor
    pooled_q: torch.Tensor | None


def solve_tiles(estimate: Estimate, rule: Rule, scaling: float, target: float | None) -> torch.Tensor:
    """The selected causal tiles (R, nb, nb), bool, with no host sync: every head runs the query-aware
    ranking (masked where the head is vertical-slash) instead of a data-dependent subset, so the host can
    queue the whole selection while the GPU still estimates. `target` = the layer's pair budget (gamma
    solved), or None with `rule.gamma` set."""
    L, bs, min_blocks = rule.seq_len, rule.block, rule.min_blocks
    nb = math.ceil(L / bs)
    vertical, slash = estimate.vertical, estimate.slash
    R = vertical.shape[0]
    device = vertical.device
    causal, _ = tile_kinds(L, bs, bs, device)
    v_blk, s_blk = sum_pool(vertical, bs), sum_pool(slash, bs)

    B, Hkv = estimate.pooled_k.shape[:2]
    groups = R // (B * Hkv)
    pooled_k = estimate.pooled_k.repeat_interleave(groups, dim=1).flatten(0, 1)  # (R, nb, D)
    pooled = torch.softmax(
        torch.matmul(estimate.last_q[:, None], pooled_k.transpose(-1, -2)).squeeze(-2) * scaling, -1
    )
    query_aware = sqrt_js_divergence(pooled, v_blk) < rule.tau  # (R,)

    v_blk[..., 0] = float("inf")
    s_blk[..., 0] = float("inf")
    ranks = _ranks(torch.stack([v_blk, s_blk]))  # (2, R, nb)
    # Cumulative token probabilities, scanned in pieces on CUDA when L allows (a 128k-long scan is one block).
    token_part = math.gcd(L, 1024)
    cums = _row_cumsum(
        torch.sort(torch.stack([vertical, slash]), -1, descending=True).values,
        token_part,
        None if token_part >= 64 else False,
    )
    col_w, diag_w, overlap, tri, tri_parts = _shape_tables(L, bs, device)
    vs = VerticalSlashCounts(cums, ranks, query_aware, bs, min_blocks)

    # Query-aware ranking: sorted row-normalised pooled tile scores. Only the causal tiles are sorted: the others
    # have probability 0, so they sort after every positive one and never move the cumulative sum; a prefix
    # that reaches them takes every zero, causal ones too.
    qa_cum = qa_extra_cum = ranking = None
    if estimate.pooled_q is not None:
        pooled_q = estimate.pooled_q.reshape(B, Hkv, groups * nb, -1)
        # -inf past each query tile: the kernel skips those products and the multiply and mask passes
        logits = tile_products(pooled_q, estimate.pooled_k, scaling, causal_period=nb).view(R, nb, nb)
        tile_probs = torch.softmax(logits, -1)  # (R, nb, nb)
        sorted_probs, packed_order = torch.sort(
            tile_probs.flatten(-2)[:, tri], dim=-1, descending=True, stable=True
        )
        module = tile_kernels("query_aware_prefix", packed_order)
        if module is not None:  # one read of the ranking per pass, no per-tile division or table read
            qa_cum, qa_extra_cum = module.query_aware_prefix(
                sorted_probs, packed_order, ranks, vs.floor, L, bs
            )
        else:
            part = nb // 2 if nb % 2 == 0 else nb  # divides nb (nb + 1) / 2
            qa_cum = _row_cumsum(sorted_probs.double(), part)
            qa_extra_cum = _row_cumsum(_query_aware_gain(packed_order, *tri_parts, ranks, vs.floor), part)
        ranking = QueryAwareRanking(tile_probs, sorted_probs, packed_order, tri, qa_cum)

    if target is None:
        assert rule.gamma is not None
        gamma = torch.tensor([float(rule.gamma)], dtype=torch.float64, device=device)
    else:  # largest gamma whose pairs fit the budget: two rounds of a 64-point grid, no host sync
        budget = torch.full((), target, dtype=torch.float64, device=device)
        lo = torch.zeros(1, dtype=torch.float64, device=device)
        hi = torch.ones(1, dtype=torch.float64, device=device)
        steps = torch.linspace(0, 1, _GRID_POINTS, dtype=torch.float64, device=device)
        module = tile_kernels("gamma_pairs", vertical)
        for _ in range(_GRID_ROUNDS):
            # Eager, outside the fused search: a fused multiply-add would round the candidates differently.
            grid = lo + (hi - lo) * steps
            # the kernel: no float64 product with the overlap table
            if module is not None:
                per_head = module.head_pairs(
                    grid, vs.cums, vs.ranks, vs.query_aware, pair_weights(L, bs, device),
                    qa_cum, qa_extra_cum, bs, min_blocks, vs.floor,
                )  # fmt: skip
                lo, hi = _last_fit_fused(grid, per_head, budget)
            else:
                lo, hi = _zoom(grid, budget, vs, col_w, diag_w, overlap, qa_cum, qa_extra_cum)
        gamma = lo
    return _final_tiles(gamma, vs, causal, ranking)


@dataclass
class VerticalSlashCounts:
    """What turns a gamma into each head's vertical-slash tile counts: the sorted cumulative token
    probabilities `cums` (2, R, L) and the tile ranks (2, R, nb) of verticals and slashes, and which heads are
    query-aware (those keep the floor of `min_blocks`)."""

    cums: torch.Tensor
    ranks: torch.Tensor
    query_aware: torch.Tensor
    block: int
    min_blocks: int

    @property
    def floor(self) -> int:
        return min(self.min_blocks, self.ranks.shape[-1])


def _vs_counts(gammas: torch.Tensor, vs: VerticalSlashCounts) -> torch.Tensor:
    """Tile columns and tile-diagonals (2, R, G) for G candidate gammas: tokens covering gamma, in tiles."""
    nb = vs.ranks.shape[-1]
    g = gammas.to(vs.cums.dtype).expand(*vs.cums.shape[:2], -1).contiguous()
    counts = torch.clamp((torch.searchsorted(vs.cums, g, right=True) + 1) // vs.block + 1, vs.min_blocks, nb)
    return torch.where(vs.query_aware[:, None], vs.floor, counts)


def _qa_taken(gammas: torch.Tensor, qa_cum: torch.Tensor, query_aware: torch.Tensor, nb: int) -> torch.Tensor:
    """Query-aware tiles taken (R, G), 0 for vertical-slash heads: the prefix whose cumulative probability
    <= gamma * rows."""
    limits = (gammas * nb).expand(qa_cum.shape[0], -1).contiguous()
    return torch.where(query_aware[:, None], torch.searchsorted(qa_cum, limits, right=True), 0)


@fused
def _query_aware_gain(
    packed_order: torch.Tensor,
    tile_col: torch.Tensor,
    tile_diag: torch.Tensor,
    tile_pairs: torch.Tensor,
    ranks: torch.Tensor,
    floor: int,
) -> torch.Tensor:
    """Pairs each ranked tile adds to the head's floor vertical-slash pattern (0 where it already has it).
    `packed_order` indexes the causal tiles; their column, tile-diagonal and pairs come from per-shape tables
    (`_shape_tables`), not from the flat index: compiled with dynamic shapes, dividing by the tile count was
    a 64-bit division per tile."""
    col, diag = tile_col[packed_order], tile_diag[packed_order]
    in_vs = (torch.gather(ranks[0], -1, col) < floor) | (torch.gather(ranks[1], -1, diag) < floor)
    return torch.where(in_vs, 0, tile_pairs[packed_order])  # int64: exact in any order


@fused
def _zoom(
    grid: torch.Tensor,
    budget: torch.Tensor,
    vs: VerticalSlashCounts,
    col_w: torch.Tensor,
    diag_w: torch.Tensor,
    overlap: torch.Tensor,
    qa_cum: torch.Tensor | None,
    qa_extra_cum: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi): the largest candidate gamma whose layer pairs fit `budget` and the next one."""
    return _last_fit(grid, head_pairs(grid, vs, col_w, diag_w, overlap, qa_cum, qa_extra_cum), budget)


def head_pairs(
    grid: torch.Tensor,
    vs: VerticalSlashCounts,
    col_w: torch.Tensor,
    diag_w: torch.Tensor,
    overlap: torch.Tensor,
    qa_cum: torch.Tensor | None,
    qa_extra_cum: torch.Tensor | None,
) -> torch.Tensor:
    """Each head's attended pairs (R, G) at the G candidate gammas, counted without building tiles: float64
    sums of integers, exact in any order."""
    iv, is_ = (vs.ranks[:, :, None, :] < _vs_counts(grid, vs)[..., None]).to(torch.float64)  # (R, G, nb)
    per_head = iv @ col_w + is_ @ diag_w - ((iv @ overlap) * is_).sum(-1)
    if qa_cum is not None and qa_extra_cum is not None:
        m = _qa_taken(grid, qa_cum, vs.query_aware, vs.ranks.shape[-1])
        extra = torch.gather(qa_extra_cum, -1, (m - 1).clamp(min=0))
        per_head = per_head + torch.where(m > 0, extra, 0).to(per_head.dtype)
    return per_head


def _last_fit(
    grid: torch.Tensor, per_head: torch.Tensor, budget: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi) from each head's pairs (R, G) at the candidates: the largest candidate whose layer total fits
    `budget`, and the next one (float64 or int64 sums of integers: the same comparisons either way)."""
    last_fit = ((per_head.sum(0) <= budget).sum() - 1).view(1)
    # index_select, not grid[0-d tensor]: indexing with a 0-d tensor reads it on the host (a sync)
    return grid.index_select(0, last_fit.clamp(min=0)), grid.index_select(
        0, (last_fit + 1).clamp(max=grid.shape[0] - 1)
    )


_last_fit_fused = fused(_last_fit)  # the kernel path's fit: one small fused kernel


@dataclass
class QueryAwareRanking:
    """The pooled tile probabilities (R, nb, nb) and the same causal tiles sorted (stable, descending): their
    probabilities, positions among the causal tiles and cumulative probabilities (R, T), and the causal tiles'
    flat indices (T,). Only one sorted tile per head is ever turned into a flat index (the last one taken), so
    the sort order is not mapped through `causal_tiles` as a whole (14.7M entries at 128k)."""

    tile_probs: torch.Tensor
    sorted_probs: torch.Tensor
    packed_order: torch.Tensor
    causal_tiles: torch.Tensor
    cum: torch.Tensor


def _final_tiles(
    gamma: torch.Tensor, vs: VerticalSlashCounts, causal: torch.Tensor, ranking: QueryAwareRanking | None
) -> torch.Tensor:
    """The causal tiles (R, nb, nb) of the chosen gamma: vertical-slash columns and diagonals, plus the
    query-aware prefix. The prefix of m tiles is every tile that sorts before or at the m-th one (probability
    above it, or equal with a flat index not above it, as the stable sort orders ties), so it is found by
    comparing with that tile instead of scattering the sort order back.

    The per-head numbers (tile counts, m and the m-th tile) come first, eagerly: compiled into the grid pass,
    inductor recomputed their searches (over 128k-long rows) for every tile, and the pass took 0.87 ms at
    128k on an H200; split, the selection takes 0.32 ms less (BENCHMARKS.md, "Prefill speed")."""
    counts = _vs_counts(gamma, vs)  # (2, R, 1)
    probs = bound = bound_index = None
    if ranking is not None:
        m = _qa_taken(gamma, ranking.cum, vs.query_aware, causal.shape[-1])  # (R, 1)
        last = (m - 1).clamp(min=0)
        probs = ranking.tile_probs
        bound = torch.gather(ranking.sorted_probs, -1, last)
        taken_last = ranking.causal_tiles[torch.gather(ranking.packed_order, -1, last)]  # flat index, (R, 1)
        bound_index = torch.where(m > 0, taken_last, -1)  # -1: no tile taken
    module = tile_kernels("coverage_tiles", causal)
    if module is not None:  # no per-tile divisions (with the gain tables: select 8.55 -> 8.25 ms at 128k)
        ind = vs.ranks < counts
        return module.coverage_tiles(ind[0], ind[1], probs, bound, bound_index)
    return _tiles_of(vs.ranks, counts, causal, probs, bound, bound_index)


@fused
def _tiles_of(
    ranks: torch.Tensor,
    counts: torch.Tensor,
    causal: torch.Tensor,
    tile_probs: torch.Tensor | None,
    bound: torch.Tensor | None,
    bound_index: torch.Tensor | None,
) -> torch.Tensor:
    """One pass over the (R, nb, nb) grid: the tiles of the first `counts` ranked columns and diagonals, plus
    the query-aware tiles sorting at or before (bound, bound_index) per head (none where bound_index < 0).
    Comparisons only: fused, the tiles are those of the eager path."""
    ind = ranks < counts  # (2, R, nb)
    blocks = _vs_tiles(ind[0], ind[1], causal)
    if tile_probs is not None and bound is not None and bound_index is not None:
        nb = causal.shape[-1]
        flat = torch.arange(nb * nb, device=causal.device).view(nb, nb)
        b, i = bound[..., None], bound_index[..., None]  # (R, 1, 1)
        taken = (tile_probs > b) | ((tile_probs == b) & (flat <= i))
        blocks |= taken & (i >= 0) & causal
    return blocks


ShapeTables = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]


def _shape_tables(seq_len: int, block: int, device: torch.device | str) -> ShapeTables:
    """Tables that depend on the shape only (cached: every layer asks for the same; do not modify them):
    float64 pairs per key-tile column and per tile-diagonal; overlap[j, t] = pairs of tile (j + t, j), where
    column j meets diagonal t; the flat indices of the causal tiles, ascending; and per causal tile (in that
    order) its column, its tile-diagonal i - j and its int64 pairs."""
    return _shape_tables_cached(seq_len, block, torch.device(device))


@lru_cache(maxsize=8)
def _shape_tables_cached(seq_len: int, block: int, device: torch.device) -> ShapeTables:
    weights = tile_pair_counts(seq_len, block, block, device).to(torch.float64)
    causal, _ = tile_kinds(seq_len, block, block, device)
    nb = weights.shape[-1]
    i = torch.arange(nb, device=device)
    diag_of = (i[:, None] - i[None, :]).clamp(min=0)  # t = i - j for causal tiles
    col_w = weights.sum(0)
    diag_w = torch.zeros(nb, dtype=torch.float64, device=device).index_add_(
        0, diag_of[causal], weights[causal]
    )
    rows = (i[:, None] + i[None, :]).clamp(max=nb - 1)
    overlap = torch.where(i[:, None] + i[None, :] < nb, weights[rows, i[:, None]], torch.zeros_like(weights))
    tri = causal.flatten().nonzero().squeeze(-1)
    return col_w, diag_w, overlap, tri, tile_parts(tri, seq_len, block, device)


def pair_weights(
    seq_len: int, block: int, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """int64 (nb,) tables of the gamma-search kernel (`sparse_eval.kernels.gamma_pairs`), from `_shape_tables`
    (cached; do not modify): pairs per key-tile column, per tile-diagonal, and of the tile where diagonal t
    meets a column in a full query row (`overlap[j, t]` for j + t < nb - 1) and in the last query row
    (`overlap[nb - 1 - t, t]`)."""
    return _pair_weights_cached(seq_len, block, torch.device(device))


@lru_cache(maxsize=8)
def _pair_weights_cached(
    seq_len: int, block: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    col_w, diag_w, overlap, *_ = _shape_tables_cached(seq_len, block, device)
    inner = overlap[0].clone()
    inner[-1] = 0  # diagonal nb - 1 meets column 0 in the last row only
    last = overlap.flip(0).diagonal()
    return tuple(w.to(torch.int64).contiguous() for w in (col_w, diag_w, inner, last))  # type: ignore[return-value]


def tile_parts(
    flat: torch.Tensor, seq_len: int, block: int, device: torch.device
) -> tuple[torch.Tensor, ...]:
    """(column, tile-diagonal i - j clamped at 0, int64 pairs) of the tiles at flat indices `flat`."""
    weights = tile_pair_counts(seq_len, block, block, device)
    nb = weights.shape[-1]
    rows, cols = flat // nb, flat % nb
    return cols, (rows - cols).clamp(min=0), weights.flatten()[flat].to(torch.int64)


def _row_cumsum(x: torch.Tensor, part: int, pieces: bool | None = None) -> torch.Tensor:
    """cumsum over the last dim of (..., N), on CUDA (`pieces` None) as scans of `part`-long pieces plus their
    offsets: one long scan per row runs on one thread block (1.9 ms for 28 rows of 1M at 128k). Exact for
    integers; floats are summed in another order than one scan (on CUDA that order was never sequential)."""
    n = x.shape[-1]
    if not (x.is_cuda if pieces is None else pieces) or n % part or n <= part:
        return torch.cumsum(x, -1)
    local = torch.cumsum(x.unflatten(-1, (n // part, part)), -1)
    ends = local[..., -1]
    return (local + (torch.cumsum(ends, -1) - ends)[..., None]).flatten(-2)


def _ranks(scores: torch.Tensor) -> torch.Tensor:
    """Position of each entry in a stable descending sort of the last dim (the inverse permutation of the
    sort order, scattered instead of found by a second sort)."""
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
    positions = torch.arange(order.shape[-1], device=order.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, positions)


def _vs_tiles(ind_v: torch.Tensor, ind_s: torch.Tensor, causal: torch.Tensor) -> torch.Tensor:
    """Tiles (..., nb, nb) of selected key-tile columns and tile-diagonals, clipped to the causal tiles.
    Each tile's diagonal i - j comes from its position, not from a cached index table: compiled (inside
    `_tiles_of`) it is arithmetic, where the table was read once per head (0.87 ms at 128k on an H200)."""
    nb = causal.shape[-1]
    i = torch.arange(nb, device=causal.device)
    diagonal = (i[:, None] - i[None, :]).clamp(min=0)  # 0 above the diagonal, masked by `causal`
    cols = ind_v[..., None, :].expand(*ind_v.shape[:-1], nb, nb)
    return (cols | ind_s[..., diagonal]) & causal
