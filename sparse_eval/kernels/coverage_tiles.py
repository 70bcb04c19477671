"""flexprefill's final tile grid from its chosen columns, diagonals and query-aware bound, as one Triton kernel.

Why: the grid (heads x nb x nb tiles, 29M entries at 128k) is a few comparisons per tile, but compiled by
inductor with dynamic shapes every entry pays 64-bit divisions by the runtime tile count to find its row
and column. Here each program owns one row of one head, so the row and column come from the program id and
an arange. Comparisons only: the same grid as `flexprefill_rule._tiles_of`. With the per-shape tables of the
query-aware gain (the same divisions), flexprefill's selection went from 8.55 to 8.25 ms at 128k on an H200,
same tiles (benchmarks/results/ab_flexprefill_grid_h200.json). Runs under `TRITON_INTERPRET=1` on CPU
tensors too.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024  # tiles of a row per program step


@triton.jit
def _grid(
    COLS, DIAGS, PROBS, BOUND, BOUND_INDEX, OUT, NB,
    QUERY_AWARE: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Program (i, r): row i of head r. Tile (i, j), j <= i (the causal tiles of square tiles), is kept when
    its column j or its diagonal i - j is selected, or (QUERY_AWARE) it sorts at or before the head's bound:
    probability above BOUND[r], or equal with a flat index i * NB + j not above BOUND_INDEX[r] (< 0: none)."""
    i = tl.program_id(0)
    r = tl.program_id(1).to(tl.int64)
    row = (r * NB + i) * NB
    if QUERY_AWARE:
        bound = tl.load(BOUND + r)
        bound_index = tl.load(BOUND_INDEX + r)
    for j0 in range(0, NB, BLOCK):
        j = j0 + tl.arange(0, BLOCK)
        causal = j <= i  # j < NB too, as i < NB
        col = tl.load(COLS + r * NB + j, mask=causal, other=0) != 0
        diag = tl.load(DIAGS + r * NB + (i - j), mask=causal, other=0) != 0
        keep = col | diag
        if QUERY_AWARE:
            p = tl.load(PROBS + row + j, mask=causal, other=0.0)
            flat = i.to(tl.int64) * NB + j
            taken = (p > bound) | ((p == bound) & (flat <= bound_index))
            # bound_index < 0: no tile taken (compared as a tensor: the interpreter cannot mix in a scalar bool)
            keep = keep | (taken & (flat * 0 <= bound_index))
        tl.store(OUT + row + j, keep & causal, mask=j < NB)


def coverage_tiles(
    cols: torch.Tensor,
    diags: torch.Tensor,
    tile_probs: torch.Tensor | None,
    bound: torch.Tensor | None,
    bound_index: torch.Tensor | None,
) -> torch.Tensor:
    """bool (R, nb, nb) for cols, diags bool (R, nb) (selected key-tile columns and tile-diagonals i - j),
    and optionally tile_probs float32 (R, nb, nb) with bound float32 (R, 1) and bound_index int64 (R, 1)."""
    R, nb = cols.shape
    out = torch.empty(R, nb, nb, dtype=torch.bool, device=cols.device)
    query_aware = tile_probs is not None and bound is not None and bound_index is not None
    if R and nb:
        _grid[(nb, R)](
            cols.contiguous().view(torch.uint8),
            diags.contiguous().view(torch.uint8),
            tile_probs.contiguous() if query_aware else out,
            bound.reshape(R).float().contiguous() if query_aware else out,
            bound_index.reshape(R).to(torch.int64).contiguous() if query_aware else out,
            out.view(torch.uint8),
            nb,
            QUERY_AWARE=query_aware,
            BLOCK=BLOCK,
        )
    return out
