"""Per-query-tile key lists of a tiles + exact-columns pattern (vertical_slash), one Triton program per row.

Why: FlashAttention-4 can read keys through a page table with one-key pages, so a pattern whose query tiles
each attend their own set of keys runs as ONE kernel over per-tile key lists (`sparse_eval.backends.gathered`)
instead of a tile pass that masks the columns out of nearly every tile plus a column pass (60.7 -> 46.3 ms at
128k, c = 5, H200, the lists included). Each program writes the list of one (batch, head, query tile) row:
  1. its exact columns before the tile's first query that no selected tile of the row holds (ascending),
  2. the keys of its selected tiles that lie wholly before the tile's first query (ascending),
  3. the tile's own diagonal keys, its first query .. its last query: last, so that FA4's bottom-right causal
     alignment masks exactly them. Every earlier key is before every query of the tile.
Entries are page numbers: `page_base[b, h] + position * page_stride`. Runs under `TRITON_INTERPRET=1` on CPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

COLUMN_BLOCK = 512  # columns examined per step
TILE_BLOCK = 512  # key tiles examined per step
SLOT_BLOCK = 1024  # tile keys written per step
WARPS = 2  # H200, 128k: 0.541 vs 0.554 ms with 4 (c = 10), 0.334 vs 0.349 (c = 20); probe_key_lists


@triton.jit
def _fill_row(
    TABLE, TABLE_STRIDE, LENGTHS, COLS, COLS_STRIDE, N_BEFORE, BLOCKS, PAGE_BASE, PAGE_STRIDE, SCRATCH,
    ROW0, NQB, NKB, L,
    BQ: tl.constexpr, BK: tl.constexpr, RATIO: tl.constexpr, BQ_P2: tl.constexpr,
    COL_BLOCK: tl.constexpr, T_BLOCK: tl.constexpr, SLOT_BLOCK: tl.constexpr,
):  # fmt: skip
    local = tl.program_id(0)
    row = ROW0 + local  # (b * H + h) * NQB + i
    bh = row // NQB
    i = row % NQB
    start = i * BQ
    base = tl.load(PAGE_BASE + bh)
    out = TABLE + local.to(tl.int64) * TABLE_STRIDE
    blk = BLOCKS + row.to(tl.int64) * NKB
    n_before = tl.load(N_BEFORE + row)
    cols_row = COLS + bh.to(tl.int64) * COLS_STRIDE
    filled = 0
    c = tl.arange(0, COL_BLOCK)
    for c0 in range(0, n_before, COL_BLOCK):
        inside = c0 + c < n_before
        col = tl.load(cols_row + c0 + c, mask=inside, other=0)
        covered = tl.load(blk + col // BK, mask=inside, other=1) != 0
        keep = (inside & (covered == 0)).to(tl.int32)
        slot = filled + tl.cumsum(keep, 0) - keep
        tl.store(out + slot, (base + col * PAGE_STRIDE).to(tl.int32), mask=keep != 0)
        filled += tl.sum(keep, 0)
    # The selected tiles wholly before the query tile: their indices first (compacted into this row's
    # scratch), then their keys, so only selected tiles cost writes.
    t = tl.arange(0, T_BLOCK)
    n_lower = tl.minimum(i * RATIO, NKB)
    scratch = SCRATCH + local.to(tl.int64) * NKB
    n_sel = 0
    for t0 in range(0, n_lower, T_BLOCK):
        j = t0 + t
        sel = (tl.load(blk + j, mask=j < n_lower, other=0) != 0).to(tl.int32)
        tl.store(scratch + n_sel + tl.cumsum(sel, 0) - sel, j, mask=sel != 0)
        n_sel += tl.sum(sel, 0)
    tl.debug_barrier()  # the scratch stores above are read by other threads of this program below
    s = tl.arange(0, SLOT_BLOCK)
    for s0 in range(0, n_sel * BK, SLOT_BLOCK):
        slot = s0 + s
        inside = slot < n_sel * BK
        j = tl.load(scratch + slot // BK, mask=inside, other=0)
        page = base + (j * BK + slot % BK) * PAGE_STRIDE
        tl.store(out + filled + slot, page.to(tl.int32), mask=inside)
    filled += n_sel * BK
    d = tl.arange(0, BQ_P2)
    rows_here = tl.minimum(L - start, BQ)
    tl.store(out + filled + d, (base + (start + d) * PAGE_STRIDE).to(tl.int32), mask=d < rows_here)
    tl.store(LENGTHS + row, (filled + rows_here).to(tl.int32))


def fill_key_lists(
    table: torch.Tensor,
    lengths: torch.Tensor,
    row0: int,
    columns: torch.Tensor,
    n_before: torch.Tensor,
    blocks: torch.Tensor,
    page_base: torch.Tensor,
    page_stride: int,
    seq_len: int,
    q_block: int,
    kv_block: int,
    tile_block: int = TILE_BLOCK,
    column_block: int = COLUMN_BLOCK,
    num_warps: int = WARPS,
) -> None:
    """Write rows `row0 .. row0 + table.shape[0]` of the key lists into `table` (int32, rows x width >= each
    row's length; entries past a row's length are left as they are) and their lengths into the same rows of
    `lengths` (int32, all rows): the form without a host read needs no separate pass to count them.

    columns: int32 or long (B, H, C) ascending exact columns (padding past each head's count is never read);
    n_before: int32 (B * H * nqb,) columns of the row's head before its first query;
    blocks: bool (B, H, nqb, nkb) selected tiles, every row's diagonal tiles among them;
    page_base: long (B * H,) page of position 0 for each (batch, query head); page_stride: pages per position.
    """
    B, H, nqb, nkb = blocks.shape
    assert lengths.dtype == torch.int32 and lengths.is_contiguous() and lengths.numel() == B * H * nqb
    _fill_row[(table.shape[0],)](
        table,
        table.stride(0),
        lengths,
        columns.reshape(B * H, columns.shape[-1]).contiguous(),
        columns.shape[-1],
        n_before.contiguous(),
        blocks.contiguous().view(torch.uint8),
        page_base.contiguous(),
        page_stride,
        torch.empty(table.shape[0], nkb, dtype=torch.int32, device=table.device),
        row0,
        nqb,
        nkb,
        seq_len,
        BQ=q_block,
        BK=kv_block,
        RATIO=q_block // kv_block,
        BQ_P2=triton.next_power_of_2(q_block),
        COL_BLOCK=column_block,
        T_BLOCK=tile_block,
        SLOT_BLOCK=SLOT_BLOCK,
        num_warps=num_warps,
    )
