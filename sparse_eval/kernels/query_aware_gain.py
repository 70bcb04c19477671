"""flexprefill's query-aware gain per sorted tile, as one Triton kernel: the pairs each ranked tile adds to
its head's floor vertical-slash pattern (0 where the floor already holds it).

Why: compiled by inductor with dynamic shapes, the flat (head, rank) index of each of the 14.7M sorted tiles
at 128k is divided by the runtime tile count in 64 bits to find its head (for the head's column and diagonal
ranks): 0.30 ms on an H200 for a pass that moves ~0.24 GB. Here each program owns a stretch of one head's
ranked tiles, so the head is the program id. A tile's column, tile-diagonal and pairs come from its position
among the causal tiles by arithmetic (row i = the triangular root of the position), not from three per-tile
tables: gathered, those three random reads per tile were what bounded the kernel (0.31 ms at 128k on an H200).
Integer results: the same values as `flexprefill_rule._query_aware_gain`. Runs under `TRITON_INTERPRET=1` on
CPU tensors too.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024  # ranked tiles per program


@triton.jit
def _gain(ORDER, RANK_V, RANK_S, OUT, T, NB, FLOOR, L, BS, BLOCK: tl.constexpr):
    """Program (s, r): ranked tiles [s * BLOCK, +BLOCK) of head r. ORDER (R, T) positions among the causal
    tiles of BS x BS tiles over L tokens, row major (tile (i, j), j <= i, is position i (i + 1) / 2 + j);
    RANK_V, RANK_S (R, NB) the head's column and diagonal ranks; OUT (R, T) int64."""
    r = tl.program_id(1).to(tl.int64)
    k = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = k < T
    p = tl.load(ORDER + r * T + k, mask=ok, other=0).to(tl.int64)
    # Row i: the largest i with i (i + 1) / 2 <= p. The float64 root is within one of it; step to the exact.
    i = ((tl.sqrt((8 * p + 1).to(tl.float64)) - 1.0) * 0.5).to(tl.int64)
    i = tl.where(i * (i + 1) // 2 > p, i - 1, i)
    i = tl.where((i + 1) * (i + 2) // 2 <= p, i + 1, i)
    col = p - i * (i + 1) // 2
    diag = i - col
    in_floor = (tl.load(RANK_V + r * NB + col, mask=ok, other=0) < FLOOR) | (
        tl.load(RANK_S + r * NB + diag, mask=ok, other=0) < FLOOR
    )
    rows = tl.minimum(BS, L - i * BS)  # the last query tile may be short
    pairs = tl.where(diag > 0, rows * BS, rows * (rows + 1) // 2)  # below the diagonal: full rows
    tl.store(OUT + r * T + k, tl.where(in_floor, 0, pairs), mask=ok)


def query_aware_gain(
    packed_order: torch.Tensor, ranks: torch.Tensor, floor: int, seq_len: int, block: int
) -> torch.Tensor:
    """int64 (R, T), as `flexprefill_rule._query_aware_gain`: `packed_order` (R, T) holds positions among the
    causal tiles of `block` x `block` tiles over `seq_len` tokens, row major (a ranking holds all of them);
    `ranks` (2, R, nb) the heads' column and diagonal ranks; tiles of the floor pattern (rank < `floor`) gain 0."""
    R, T = packed_order.shape
    nb = ranks.shape[-1]
    if nb * (nb + 1) // 2 < T or nb != -(-seq_len // block):
        raise ValueError(f"{T} ranked tiles and {nb} tile ranks do not fit {seq_len} tokens in {block}-tiles")
    order = packed_order.contiguous()
    ranks = ranks.contiguous()
    out = torch.empty(R, T, dtype=torch.int64, device=order.device)
    if R and T:
        _gain[(triton.cdiv(T, BLOCK), R)](
            order, ranks[0], ranks[1], out, T, nb, floor, seq_len, block, BLOCK=BLOCK
        )
    return out
