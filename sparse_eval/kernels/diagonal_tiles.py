"""vertical_slash's tiles and column costs from its selected tile-diagonals, as two Triton kernels.

Why: `vertical_slash.selected_tiles` (the tile grid, 58.7M entries at 128k) and
`vertical_slash.diagonal_column_costs` (one float64 per key column) are index arithmetic per entry. Compiled by
inductor with dynamic shapes, the tile sizes are runtime values, so every entry pays 64-bit divisions: 0.12 ms
each at 128k on an H200, about four times what their writes take. Here the tile sizes are compile-time
constants. Same values as the plain functions (integers; the costs are exact in float64). Runs under
`TRITON_INTERPRET=1` on CPU tensors too.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024  # entries per program step


@triton.jit
def _tiles(
    DIAG, OUT, NQB, NKB, N_DIAG,
    BQ: tl.constexpr, BK: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Program (i, bh): row i of head bh. Tile (i, j) is on tile-diagonal u = ratio * i + ratio - 1 - j and is
    kept when that diagonal is selected; u >= 0 means j * BK < (i + 1) * BQ, and j < NKB that j * BK < L, so
    every such tile holds a causal pair."""
    i = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    ratio: tl.constexpr = BQ // BK
    out = OUT + (bh * NQB + i) * NKB
    for j0 in range(0, NKB, BLOCK):
        j = j0 + tl.arange(0, BLOCK)
        u = ratio * i + ratio - 1 - j
        ok = (j < NKB) & (u >= 0) & (u < N_DIAG)
        sel = tl.load(DIAG + bh * N_DIAG + u, mask=ok, other=0)
        tl.store(out + j, (sel != 0) & ok, mask=j < NKB)


@triton.jit
def _column_costs(
    DIAG, ALONG, OUT, NQB, N_DIAG, L,
    BQ: tl.constexpr, BK: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Program (block, bh): the costs of columns block * BLOCK + [0, BLOCK) of head bh, as
    `vertical_slash.diagonal_column_costs` (ALONG: its prefix sums along every ratio-th tile-diagonal)."""
    bh = tl.program_id(1).to(tl.int64)
    ratio: tl.constexpr = BQ // BK
    c = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = c < L
    ic, jb = c // BQ, c // BK
    own = ratio * ic + ratio - 1 - jb
    last = ratio * (NQB - 1) + ratio - 1 - jb
    diag = DIAG + bh * N_DIAG
    along = ALONG + bh * N_DIAG
    held_own = (tl.load(diag + own, mask=inside, other=0) != 0).to(tl.int64)
    held_last = (tl.load(diag + last, mask=inside, other=0) != 0).to(tl.int64)
    along_own = tl.load(along + own, mask=inside, other=0)
    along_last = tl.load(along + last, mask=inside, other=0)
    short = BQ - (L - (NQB - 1) * BQ)  # rows the last query tile lacks
    below = tl.where(ic < NQB - 1, BQ * (along_last - along_own) - short * held_last, 0)
    own_rows = tl.minimum((ic + 1) * BQ, L) - c
    cost = (L - c) - below - held_own * own_rows
    tl.store(OUT + bh * L + c, cost.to(tl.float64), mask=inside)


def tiles_and_column_costs(
    diag_sel: torch.Tensor, along: torch.Tensor, seq_len: int, q_block: int, kv_block: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(blocks bool (..., nqb, nkb), costs float64 (..., L)) for diag_sel bool (..., n_diag) and `along`
    int64 (..., n_diag), the held tile-diagonals summed along every ratio-th one."""
    lead, n_diag = diag_sel.shape[:-1], diag_sel.shape[-1]
    nqb, nkb = triton.cdiv(seq_len, q_block), triton.cdiv(seq_len, kv_block)
    heads = lead.numel()
    diag = diag_sel.reshape(heads, n_diag).contiguous().view(torch.uint8)
    along = along.reshape(heads, n_diag).to(torch.int64).contiguous()
    blocks = torch.empty(*lead, nqb, nkb, dtype=torch.bool, device=diag_sel.device)
    costs = torch.empty(*lead, seq_len, dtype=torch.float64, device=diag_sel.device)
    if heads and seq_len:
        sizes = {"BQ": q_block, "BK": kv_block, "BLOCK": BLOCK}
        _tiles[(nqb, heads)](diag, blocks.view(torch.uint8), nqb, nkb, n_diag, **sizes)
        _column_costs[(triton.cdiv(seq_len, BLOCK), heads)](diag, along, costs, nqb, n_diag, seq_len, **sizes)
    return blocks, costs
