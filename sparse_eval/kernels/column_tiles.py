"""Block-mask indices of the tile pass of a pattern with exact columns, one Triton program per tile row.

Why: the torch path builds `sel = blocks & causal` and `clean = full & ~column_in_tile` over the whole
(heads, query tiles, key tiles) grid and lists each kind with two `flex.selected_first` scans (~1.5 ms of
the 2.1 ms of this step at 128k on an H200). Here each program reads one row of the selected grid, the
shape's tile kinds and the row's column flags, and writes both index lists directly: the same tensors as
`selected_first(sel & ~clean)` and `selected_first(sel & clean)` (selected tiles first in ascending order,
then the others, so each list spans the full block count). Runs under `TRITON_INTERPRET=1` on CPU tensors too.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from sparse_eval.kernels.tile_rows import compact


@triton.jit
def _split_row(
    BLOCKS, KINDS, COLS, PART_NUM, PART_IDX, FULL_NUM, FULL_IDX,
    NQB, NKB, BLOCK: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0)  # (b * H + h) * NQB + i
    bh = row // NQB
    i = row % NQB
    j = tl.arange(0, BLOCK)
    ok = j < NKB
    sel = tl.load(BLOCKS + row.to(tl.int64) * NKB + j, mask=ok, other=0) != 0
    kind = tl.load(KINDS + i * NKB + j, mask=ok, other=0)  # 0 not causal, 1 full, 2 partial
    col = tl.load(COLS + bh * NKB + j, mask=ok, other=0) != 0
    sel = sel & (kind != 0)
    clean = (kind == 1) & (col == 0)
    base = row.to(tl.int64) * NKB
    compact(sel & (clean == 0), j, ok, PART_NUM + row, PART_IDX + base)
    compact(sel & clean, j, ok, FULL_NUM + row, FULL_IDX + base)


def split_tiles(
    blocks: torch.Tensor, kinds: torch.Tensor, column_in_tile: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(part_num, part_idx, full_num, full_idx) int32 of the selected causal tiles of `blocks` (B, H, nqb, nkb):
    "full" = all pairs causal (`kinds` int8 (nqb, nkb): 0 not causal, 1 full, 2 partial) and no exact column
    in the tile's keys (`column_in_tile` bool (B, H, nkb)); "part" = the other selected tiles."""
    B, H, nqb, nkb = blocks.shape
    dev = blocks.device
    part_num = torch.empty(B, H, nqb, dtype=torch.int32, device=dev)
    full_num = torch.empty_like(part_num)
    part_idx = torch.empty(B, H, nqb, nkb, dtype=torch.int32, device=dev)
    full_idx = torch.empty_like(part_idx)
    block = max(16, triton.next_power_of_2(nkb))
    _split_row[(B * H * nqb,)](
        blocks.contiguous().view(torch.uint8),
        kinds.contiguous(),
        column_in_tile.contiguous().view(torch.uint8),
        part_num,
        part_idx,
        full_num,
        full_idx,
        nqb,
        nkb,
        BLOCK=block,
        num_warps=4 if block <= 1024 else 8,
    )
    return part_num, part_idx, full_num, full_idx
