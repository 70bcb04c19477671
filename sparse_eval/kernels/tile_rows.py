"""Triton kernel: a tile pattern's block-mask indices straight from per-row scores or a tile grid.

FlexAttention's `BlockMask.from_kv_blocks` wants, per (batch, head, query tile), the kept key tiles in
ascending order, split into partial (diagonal, mask needed) and full tiles, each index row padded to the
full tile count with the tiles not kept. Built from a boolean grid with torch, that is several passes over
the (heads, query tiles, key tiles) grid; here one program handles one row with the row in registers:

  * SELECT: the row's scores (float32); keep the forced tiles, plus the `m[i]` best candidate tiles
    (ties to the lower index: the prefix of a stable descending sort). The m-th best key (or a bound with
    exactly m keys above it) is found first, by a bitwise search of at most 32 steps on the scores'
    order-preserving unsigned keys in a one-warp program per row
    (`_kth_key`: no barrier between its dependent reductions; on the H200 the same search inside the
    four-warp row program cost 1.2 ms at 128k, 128 x 64 tiles), then ties are ranked by index.
  * otherwise: the row of a boolean grid (kept = grid & causal).

It also writes each row's attended (query, key) pairs (int64, exact), so the compression report needs no
grid pass. Tile kinds come from a small per-shape code table: 0 outside the causal triangle, 1 a full
candidate tile, 2 a forced full tile, 3 a partial (diagonal) tile, always kept when SELECT.
Scores must be finite (pooled q . k of finite inputs); -0.0 ranks as 0.0, as in torch's comparisons.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

MAX_TILES = 8192  # key tiles per row held in registers (128k tokens at 16-wide tiles)


@triton.jit
def _row_keys(src, code, r, i, nkb, BLOCK: tl.constexpr):
    """Order-preserving unsigned keys of row r's scores; 0 (a NaN's key, below every finite score) for
    tiles that are not candidates (code 1)."""
    j = tl.arange(0, BLOCK)
    inside = j < nkb
    kind = tl.load(code + i.to(tl.int64) * nkb + j, mask=inside, other=0)
    s = tl.load(src + r.to(tl.int64) * nkb + j, mask=inside, other=0.0).to(tl.float32)
    s = tl.where(s == 0.0, 0.0, s)  # -0.0 and 0.0 are one value
    bits = s.to(tl.int32, bitcast=True)
    flip = tl.where(bits < 0, -1, -2147483648)  # negative: all bits; else the sign bit
    key = (bits ^ flip).to(tl.uint32, bitcast=True)  # unsigned order = float order
    return tl.where(inside & (kind == 1), key, tl.zeros_like(key))


@triton.jit
def _kth_key(src, code, m_ptr, kth_out, nqb, nkb, BLOCK: tl.constexpr):
    """Per row: a bound t with #(keys >= t) >= m and #(keys > t) <= m, one bit a step: the largest t with
    at least m keys >= t (the m-th best key), or the first bound with exactly m keys >= it (then the m best
    are exactly the keys >= t, and `_tile_rows` takes them all: random scores get there in ~15 of 32 steps).
    Launched with one warp per row, so its dependent reductions need no barrier."""
    r = tl.program_id(0)
    i = r % nqb
    key = _row_keys(src, code, r, i, nkb, BLOCK)
    m = tl.load(m_ptr + i)
    kth = (m * 0).to(tl.uint32)
    bit = kth + 2147483648
    done = m * 0
    while (bit != 0) & (done == 0):
        trial = kth | bit
        count = tl.sum((key >= trial).to(tl.int32), 0)
        kth = tl.where(count >= m, trial, kth)
        done = (count == m).to(tl.int32)
        bit = bit >> 1
    tl.store(kth_out + r, kth.to(tl.int32, bitcast=True))


@triton.jit
def _tile_rows(
    src,
    code,
    m_ptr,
    kth_ptr,
    part_num,
    part_idx,
    full_num,
    full_idx,
    pairs,
    nqb,
    nkb,
    L,
    BQ: tl.constexpr,
    BK: tl.constexpr,
    BLOCK: tl.constexpr,
    SELECT: tl.constexpr,
):
    r = tl.program_id(0)
    i = r % nqb
    j = tl.arange(0, BLOCK)
    inside = j < nkb
    row = r.to(tl.int64) * nkb
    kind = tl.load(code + i.to(tl.int64) * nkb + j, mask=inside, other=0).to(tl.int32)
    if SELECT:
        key = _row_keys(src, code, r, i, nkb, BLOCK)
        cand = inside & (kind == 1)
        m = tl.load(m_ptr + i)
        kth = tl.load(kth_ptr + r).to(tl.uint32, bitcast=True)
        greater = cand & (key > kth)
        tie = cand & (key == kth)
        need = m - tl.sum(greater.to(tl.int32), 0)
        take = tie & (tl.cumsum(tie.to(tl.int32), 0) <= need)
        keep = inside & ((kind >= 2) | greater | take)
    else:
        g = tl.load(src + row + j, mask=inside, other=0)
        keep = inside & (g != 0) & (kind != 0)
    # causal pairs of each tile, in closed form (rows r0 <= q < r1, keys c0 <= c < c0 + width); each term
    # is below L * max(BQ, BK), so int32 until the row sum
    r0 = i * BQ
    r1 = tl.minimum(r0 + BQ, L)
    c0 = j * BK
    width = tl.minimum(c0 + BK, L) - c0
    x1 = tl.maximum(r1 - c0, 0)
    in1 = tl.minimum(x1, width)
    x0 = tl.maximum(r0 - c0, 0)
    in0 = tl.minimum(x0, width)
    tile_pairs = (in1 * (in1 + 1) // 2 + (x1 - in1) * width) - (in0 * (in0 + 1) // 2 + (x0 - in0) * width)
    tl.store(pairs + r, tl.sum(tl.where(keep, tile_pairs, 0).to(tl.int64), 0))
    part = keep & (kind == 3)
    full = keep & (kind != 3)
    compact(part, j, inside, part_num + r, part_idx + row)
    compact(full, j, inside, full_num + r, full_idx + row)


@triton.jit
def compact(sel, j, inside, num_ptr, idx_ptr):
    """Selected positions first (ascending), then the others (ascending): every row a permutation."""
    ones = sel.to(tl.int32)
    before = tl.cumsum(ones, 0)
    count = tl.sum(ones, 0)
    pos = tl.where(sel, before - 1, count + j - before)
    tl.store(num_ptr, count)
    tl.store(idx_ptr + pos, j.to(tl.int32), mask=inside)


def tile_rows(
    src: torch.Tensor,
    codes: torch.Tensor,
    m: torch.Tensor | None,
    seq_len: int,
    q_block: int,
    kv_block: int,
) -> tuple[torch.Tensor, ...]:
    """(part_num, part_idx, full_num, full_idx, pairs) for `src` (..., nqb, nkb): float32 scores when `m`
    (int32 (nqb,), candidates to take per row) is given, else a bool grid. codes: int8 (nqb, nkb).
    Returns int32 (..., nqb), int32 (..., nqb, nkb) twice, and int64 (..., nqb) pairs per row."""
    nqb, nkb = codes.shape
    if nkb > MAX_TILES:
        raise ValueError(f"at most {MAX_TILES} key tiles per row, got {nkb}")
    lead = src.shape[:-2]
    rows = lead.numel() * nqb
    device = src.device
    src = src.contiguous() if m is not None else src.contiguous().view(torch.uint8)
    part_num = torch.empty(rows, dtype=torch.int32, device=device)
    full_num = torch.empty_like(part_num)
    part_idx = torch.empty(rows, nkb, dtype=torch.int32, device=device)
    full_idx = torch.empty_like(part_idx)
    pairs = torch.empty(rows, dtype=torch.int64, device=device)
    block = triton.next_power_of_2(nkb)
    codes = codes.contiguous()
    kth = torch.empty(rows if m is not None else 1, dtype=torch.int32, device=device)
    if rows and m is not None:
        _kth_key[(rows,)](src, codes, m, kth, nqb, nkb, BLOCK=block, num_warps=max(1, block // 2048))
    if rows:
        _tile_rows[(rows,)](
            src, codes, m if m is not None else part_num, kth, part_num, part_idx, full_num, full_idx,
            pairs, nqb, nkb, seq_len, BQ=q_block, BK=kv_block, BLOCK=block, SELECT=m is not None,
            num_warps=4 if block <= 2048 else 8,
        )  # fmt: skip
    return (
        part_num.view(*lead, nqb),
        part_idx.view(*lead, nqb, nkb),
        full_num.view(*lead, nqb),
        full_idx.view(*lead, nqb, nkb),
        pairs.view(*lead, nqb),
    )
