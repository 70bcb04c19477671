"""flexprefill's gamma search, one Triton pass per round: each head's attended pairs for each candidate gamma.

Why: in torch a round built the (heads, candidates, tiles) column and diagonal indicators in float64 and counted
the pairs where a chosen column meets a chosen diagonal with a float64 product against the (tiles, tiles)
overlap table: about 0.14 ms of kernels a round at 128k on an H200, half of it the product. Column j meets
tile-diagonal t in tile (j + t, j), and only two kinds of tile occur there: a tile of a full query row, or one
of the last query row (which may be short). So the overlap of diagonal t with the chosen columns is the count
of chosen columns j < nb - 1 - t times the first kind's pairs, plus (column nb - 1 - t chosen) times the second
kind's: a prefix count, no product. One program per (candidate, head) finds the head's column and diagonal
counts (64-way searches in its sorted cumulative token probabilities), walks its tile ranks once, and adds the
pairs its query-aware tiles gain (a search in their cumulative probabilities). Integers throughout, so
the counts equal the torch path's float64 sums of the same integers. Side by side, flexprefill's selection took
7.07 -> 6.93 ms at 128k (benchmarks/results/ab_flexprefill_gamma_kernel_h200.json); the 64-way searches, with a
smaller change, 6.89 -> 6.84 ms (ab_flexprefill_search_width_h200.json). Runs under
`TRITON_INTERPRET=1` on CPU tensors too.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024  # tile ranks a program reads at once (longer rows loop)
SEARCH_WIDTH = 64  # entries a search step reads at once


@triton.jit
def _count_at_most(ROW, n, x, top, WIDTH: tl.constexpr):
    """Entries of the ascending ROW[0:n] that are <= x (torch.searchsorted(..., right=True)), by a WIDTH-ary
    search: each step reads WIDTH entries at once and keeps the stretch between the last <= x and the next,
    so a 128k-long row takes 3 dependent reads, not 17 (each a trip to memory). `top` is the largest power of
    WIDTH that is <= n (1 for n < WIDTH)."""
    pos = tl.zeros([], tl.int64)
    step = tl.zeros([], tl.int64) + top  # `top` may arrive as a constexpr 1
    probe = tl.arange(0, WIDTH).to(tl.int64) + 1
    while step > 0:
        at = pos + probe * step  # the answer is >= at exactly when ROW[at - 1] <= x
        inside = at <= n
        value = tl.load(ROW + tl.where(inside, at - 1, 0), mask=inside, other=0)
        pos += tl.sum((inside & (value <= x)).to(tl.int64), 0) * step
        step = step // WIDTH
    return pos


@triton.jit
def _head_pairs(
    GRID, CUMS, RANKS, QUERY_AWARE, COL_W, DIAG_W, INNER_W, LAST_W, QA_CUM, QA_GAIN, OUT,
    R, G, L, L_TOP, NB, T, T_TOP, BS, MIN_BLOCKS, FLOOR,
    HAS_QA: tl.constexpr, BLOCK: tl.constexpr, SEARCH_WIDTH: tl.constexpr,
):  # fmt: skip
    """Program (g, r): OUT[r, g] = head r's pairs at gamma GRID[g]. CUMS (2, R, L) float32 ascending cumulative
    sorted vertical / slash probabilities; RANKS (2, R, NB) column and diagonal ranks; COL_W, DIAG_W (NB,) pairs
    per column / diagonal; INNER_W[t], LAST_W[t] pairs of the tile where diagonal t meets a column in a full
    query row / in the last query row; QA_CUM (R, T) float64, QA_GAIN (R, T) int64 the ranked query-aware
    tiles' cumulative probability and gained pairs."""
    g = tl.program_id(0)
    r = tl.program_id(1).to(tl.int64)
    gamma = tl.load(GRID + g)
    query_aware = tl.load(QUERY_AWARE + r) != 0
    g32 = gamma.to(tl.float32)  # as torch: the candidates cast to the cumulative sums' dtype
    n_v = _count_at_most(CUMS + r * L, L, g32, L_TOP, SEARCH_WIDTH)
    n_s = _count_at_most(CUMS + (R + r) * L, L, g32, L_TOP, SEARCH_WIDTH)
    count_v = tl.where(query_aware, FLOOR, tl.minimum(tl.maximum((n_v + 1) // BS + 1, MIN_BLOCKS), NB))
    count_s = tl.where(query_aware, FLOOR, tl.minimum(tl.maximum((n_s + 1) // BS + 1, MIN_BLOCKS), NB))
    total = tl.zeros([], tl.int64)
    before = tl.zeros([], tl.int64)  # chosen columns before this block
    for x0 in range(0, NB, BLOCK):
        x = x0 + tl.arange(0, BLOCK)
        ok = x < NB
        t = NB - 1 - x  # the diagonal that meets column x in the last query row
        col = ((tl.load(RANKS + r * NB + x, mask=ok, other=0) < count_v) & ok).to(tl.int64)
        diag = ((tl.load(RANKS + (R + r) * NB + t, mask=ok, other=0) < count_s) & ok).to(tl.int64)
        earlier = before + tl.cumsum(col, 0) - col  # chosen columns j < x: they meet diagonal t in full rows
        meets = tl.load(INNER_W + t, mask=ok, other=0) * earlier + tl.load(LAST_W + t, mask=ok, other=0) * col
        total += tl.sum(col * tl.load(COL_W + x, mask=ok, other=0), 0)
        total += tl.sum(diag * (tl.load(DIAG_W + t, mask=ok, other=0) - meets), 0)
        before += tl.sum(col, 0)
    if HAS_QA:
        taken = _count_at_most(QA_CUM + r * T, T, gamma * NB, T_TOP, SEARCH_WIDTH)
        use = query_aware & (taken > 0)
        total += tl.where(use, tl.load(QA_GAIN + r * T + tl.where(use, taken - 1, 0), mask=use), 0)
    tl.store(OUT + r * G + g, total)


def _top_power(n: int) -> int:
    """The largest power of SEARCH_WIDTH <= n (1 for n < SEARCH_WIDTH): the first step of `_count_at_most`."""
    top = 1
    while top * SEARCH_WIDTH <= n:
        top *= SEARCH_WIDTH
    return top


def head_pairs(
    grid: torch.Tensor,
    cums: torch.Tensor,
    ranks: torch.Tensor,
    query_aware: torch.Tensor,
    weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    qa_cum: torch.Tensor | None,
    qa_gain: torch.Tensor | None,
    block: int,
    min_blocks: int,
    floor: int,
) -> torch.Tensor:
    """(R, G) int64: each head's attended pairs for each of the G candidate gammas in `grid` (float64), as
    `flexprefill_rule._zoom` counts them. `cums` (2, R, L) float32, `ranks` (2, R, nb) int64, `query_aware`
    (R,) bool; `weights` = int64 (nb,) pairs per column, per diagonal, of a diagonal's tile in a full query row
    and in the last one (`flexprefill_rule.pair_weights`); `qa_cum` float64 / `qa_gain` int64 (R, T) or both
    None (no query-aware ranking)."""
    _, R, L = cums.shape
    nb = ranks.shape[-1]
    G = grid.shape[0]
    if (qa_cum is None) != (qa_gain is None) or any(w.shape != (nb,) for w in weights):
        raise ValueError(f"need both query-aware sums or neither, and four ({nb},) weight tables")
    out = torch.empty(R, G, dtype=torch.int64, device=cums.device)
    if R == 0 or G == 0:
        return out
    T = 0 if qa_cum is None else qa_cum.shape[-1]
    dummy = torch.zeros(1, dtype=torch.int64, device=cums.device)
    _head_pairs[(G, R)](
        grid.contiguous(), cums.contiguous(), ranks.contiguous(), query_aware.contiguous(),
        *(w.contiguous() for w in weights),
        dummy if qa_cum is None else qa_cum.contiguous(), dummy if qa_gain is None else qa_gain.contiguous(),
        out, R, G, L, _top_power(L), nb, T, _top_power(T), block, min_blocks, floor,
        HAS_QA=qa_cum is not None, BLOCK=min(BLOCK, triton.next_power_of_2(max(nb, 1))),
        SEARCH_WIDTH=SEARCH_WIDTH,
    )  # fmt: skip
    return out
