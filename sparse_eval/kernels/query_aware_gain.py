"""flexprefill's query-aware gain per sorted tile, as one Triton kernel: the pairs each ranked tile adds to
its head's floor vertical-slash pattern (0 where the floor already holds it).

Why: compiled by inductor with dynamic shapes, the flat (head, rank) index of each of the 14.7M sorted tiles
at 128k is divided by the runtime tile count in 64 bits to find its head (for the head's column and diagonal
ranks): 0.30 ms on an H200 for a pass that moves ~0.24 GB. Here each program owns a stretch of one head's
ranked tiles, so the head is the program id. Integer gathers and comparisons only: the same values as
`flexprefill_rule._query_aware_gain`. Runs under `TRITON_INTERPRET=1` on CPU tensors too.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024  # ranked tiles per program


@triton.jit
def _gain(ORDER, COL, DIAG, PAIRS, RANK_V, RANK_S, OUT, T, NB, FLOOR, BLOCK: tl.constexpr):
    """Program (s, r): ranked tiles [s * BLOCK, +BLOCK) of head r. ORDER (R, T) positions among the causal
    tiles; COL, DIAG, PAIRS (T,) each causal tile's key-tile column, tile-diagonal and pairs; RANK_V, RANK_S
    (R, NB) the head's column and diagonal ranks; OUT (R, T) int64."""
    r = tl.program_id(1).to(tl.int64)
    k = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = k < T
    tile = tl.load(ORDER + r * T + k, mask=ok, other=0)
    col = tl.load(COL + tile, mask=ok, other=0)
    diag = tl.load(DIAG + tile, mask=ok, other=0)
    in_floor = (tl.load(RANK_V + r * NB + col, mask=ok, other=0) < FLOOR) | (
        tl.load(RANK_S + r * NB + diag, mask=ok, other=0) < FLOOR
    )
    pairs = tl.load(PAIRS + tile, mask=ok, other=0).to(tl.int64)
    tl.store(OUT + r * T + k, tl.where(in_floor, 0, pairs), mask=ok)


def query_aware_gain(
    packed_order: torch.Tensor,
    tile_col: torch.Tensor,
    tile_diag: torch.Tensor,
    tile_pairs: torch.Tensor,
    ranks: torch.Tensor,
    floor: int,
) -> torch.Tensor:
    """int64 (R, T), as `flexprefill_rule._query_aware_gain`: `packed_order` (R, T) indexes the causal tiles,
    whose column, tile-diagonal and pairs are `tile_col`, `tile_diag`, `tile_pairs` (T,); `ranks` (2, R, nb)
    the heads' column and diagonal ranks; tiles of the floor pattern (rank < `floor`) gain 0."""
    R, T = packed_order.shape
    nb = ranks.shape[-1]
    order = packed_order.contiguous()
    ranks = ranks.contiguous()
    out = torch.empty(R, T, dtype=torch.int64, device=order.device)
    if R and T:
        _gain[(triton.cdiv(T, BLOCK), R)](
            order, tile_col.contiguous(), tile_diag.contiguous(), tile_pairs.contiguous(),
            ranks[0], ranks[1], out, T, nb, floor, BLOCK=BLOCK,
        )  # fmt: skip
    return out
