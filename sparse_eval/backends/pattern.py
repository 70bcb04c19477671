"""The selected sparse pattern of one causal prefill, shared by every prefill method and both backends.

A pattern is a set of (query, key) pairs per head, described as
  * whole tiles of `q_block` rows x `kv_block` keys (a boolean tile grid), clipped to the causal triangle, plus
  * optional exact key columns (MInference verticals): column c is attended by every query at or after c.
Methods produce patterns; backends execute them; `attended_pairs` counts them for the compression report.
Nothing here loops over heads or blocks in Python, so selection stays cheap at 128k tokens on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from sparse_eval.backends.fused import fused


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class BlockPattern:
    """Selected pairs of a causal prefill of `seq_len` tokens for each (batch, head).

    Attributes:
        seq_len: number of queries = number of keys.
        q_block: tile height (queries per tile).
        kv_block: tile width (keys per tile).
        blocks: bool (B, H, ceil(L/q_block), ceil(L/kv_block)); True tiles are attended (their causal part).
        columns: optional long (B, H, C), ascending, distinct per head; value `seq_len` marks padding.
    """

    seq_len: int
    q_block: int
    kv_block: int
    blocks: torch.Tensor
    columns: torch.Tensor | None = None

    def __post_init__(self) -> None:
        nqb, nkb = _ceil_div(self.seq_len, self.q_block), _ceil_div(self.seq_len, self.kv_block)
        if self.blocks.dtype != torch.bool or tuple(self.blocks.shape[-2:]) != (nqb, nkb):
            raise ValueError(
                f"blocks must be a bool tensor (B, H, {nqb}, {nkb}) for seq_len={self.seq_len}, "
                f"q_block={self.q_block}, kv_block={self.kv_block}; got {self.blocks.dtype} "
                f"{tuple(self.blocks.shape)}"
            )
        if self.columns is not None and self.columns.shape[:2] != self.blocks.shape[:2]:
            raise ValueError(f"columns {tuple(self.columns.shape)} must share (B, H) with blocks")

    @property
    def num_q_blocks(self) -> int:
        return self.blocks.shape[-2]

    @property
    def num_kv_blocks(self) -> int:
        return self.blocks.shape[-1]


def tile_pair_counts(seq_len: int, q_block: int, kv_block: int, device: torch.device | str) -> torch.Tensor:
    """Causal (query, key) pairs inside each tile, int64 (nqb, nkb), in closed form (no L x L tensor).
    Cached per shape and device (every layer of a prefill asks for the same table); do not modify it."""
    return _tile_pair_counts(seq_len, q_block, kv_block, torch.device(device))


@lru_cache(maxsize=16)
def _tile_pair_counts(seq_len: int, q_block: int, kv_block: int, device: torch.device) -> torch.Tensor:
    nqb, nkb = _ceil_div(seq_len, q_block), _ceil_div(seq_len, kv_block)
    r0 = torch.arange(nqb, device=device, dtype=torch.int64)[:, None] * q_block
    r1 = torch.clamp(r0 + q_block, max=seq_len)
    c0 = torch.arange(nkb, device=device, dtype=torch.int64)[None, :] * kv_block
    width = torch.clamp(c0 + kv_block, max=seq_len) - c0

    def prefix(n: torch.Tensor) -> torch.Tensor:
        # sum over rows r < n of the number of tile keys c <= r, i.e. sum_{x=1..n} clamp(x - c0, 0, width)
        x = torch.clamp(n - c0, min=0)
        inside = torch.clamp(x, max=width)
        return inside * (inside + 1) // 2 + (x - inside) * width

    return prefix(r1) - prefix(r0)


def tile_kinds(
    seq_len: int, q_block: int, kv_block: int, device: torch.device | str
) -> tuple[torch.Tensor, ...]:
    """(causal, full) bool (nqb, nkb): tiles holding any causal pair, and tiles whose pairs are all causal."""
    counts = tile_pair_counts(seq_len, q_block, kv_block, device)
    nqb, nkb = counts.shape
    rows = (
        torch.clamp(torch.arange(1, nqb + 1, device=device) * q_block, max=seq_len)
        - torch.arange(nqb, device=device) * q_block
    )
    cols = (
        torch.clamp(torch.arange(1, nkb + 1, device=device) * kv_block, max=seq_len)
        - torch.arange(nkb, device=device) * kv_block
    )
    return counts > 0, counts == rows[:, None] * cols[None, :]


@fused
def column_costs(
    blocks: torch.Tensor, seq_len: int, q_block: int, kv_block: int, cols: torch.Tensor
) -> torch.Tensor:
    """Pairs each key column adds on top of the selected tiles: rows q >= c whose tile (q // q_block,
    c // kv_block) is not selected. float64 (B, H, C); entries of `cols` equal to `seq_len` are padding (0)."""
    L, bq, bk = seq_len, q_block, kv_block
    device = blocks.device
    nqb, nkb = blocks.shape[-2:]
    row_sizes = (
        torch.clamp(torch.arange(1, nqb + 1, device=device) * bq, max=L)
        - torch.arange(nqb, device=device) * bq
    ).to(torch.float32)
    covered_rows = blocks.to(torch.float32) * row_sizes[:, None]
    suffix = torch.flip(torch.cumsum(torch.flip(covered_rows, dims=[-2]), dim=-2), dims=[-2])
    suffix = torch.cat([suffix, torch.zeros_like(suffix[..., :1, :])], dim=-2)  # (B, H, nqb + 1, nkb)
    valid = cols < L
    c = torch.where(valid, cols, torch.zeros_like(cols))
    ic, jb = c // bq, c // bk
    later = torch.gather(suffix.flatten(-2), -1, (ic + 1) * nkb + jb).to(torch.float64)
    own_sel = torch.gather(blocks.flatten(-2), -1, ic * nkb + jb).to(torch.float64)
    own_rows = (torch.clamp((ic + 1) * bq, max=L) - c).to(torch.float64)
    uncovered = (L - c).to(torch.float64) - later - own_sel * own_rows
    return torch.where(valid, uncovered, torch.zeros_like(uncovered))


@fused
def tile_pairs(blocks: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Causal pairs of the selected tiles per (batch, head), float64 (B, H) (integers: exact in any order)."""
    return (blocks.to(torch.float64) * weights.to(torch.float64)).sum(dim=(-1, -2))


def attended_pairs(pattern: BlockPattern) -> torch.Tensor:
    """Exact number of attended causal pairs per (batch, head), float64 (B, H)."""
    L, bq, bk = pattern.seq_len, pattern.q_block, pattern.kv_block
    total = tile_pairs(pattern.blocks, tile_pair_counts(L, bq, bk, pattern.blocks.device))
    if pattern.columns is None or pattern.columns.numel() == 0:
        return total
    return total + column_costs(pattern.blocks, L, bq, bk, pattern.columns).sum(-1)


def dense_mask(pattern: BlockPattern) -> torch.Tensor:
    """The pattern as a boolean (B, H, L, L) mask (causal), for the reference backend and the tests."""
    L, bq, bk = pattern.seq_len, pattern.q_block, pattern.kv_block
    device = pattern.blocks.device
    mask = pattern.blocks.repeat_interleave(bq, dim=-2)[..., :L, :].repeat_interleave(bk, dim=-1)[..., :L]
    if pattern.columns is not None:
        cols = pattern.columns
        col_mask = torch.zeros(*cols.shape[:2], L + 1, dtype=torch.bool, device=device)
        col_mask.scatter_(-1, cols.clamp(max=L), True)
        mask = mask | col_mask[..., None, :L]
    causal = torch.ones(L, L, dtype=torch.bool, device=device).tril()
    return mask & causal


def columns_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Selected key columns of a bool (B, H, L) mask as ascending indices (B, H, C), padded with L."""
    L = mask.shape[-1]
    width = int(mask.sum(-1).max().item()) if mask.numel() else 0  # one host read: the column count
    # Stable compaction instead of a sort: selected column c goes to slot (selected before c); the others
    # to a spare slot `width` that is cut off.
    slot = torch.where(mask, torch.cumsum(mask, -1) - 1, width)
    idx = torch.arange(L, device=mask.device).expand_as(mask)
    out = torch.full((*mask.shape[:-1], width + 1), L, dtype=torch.long, device=mask.device)
    return out.scatter_(-1, slot, torch.where(mask, idx, L))[..., :width]
