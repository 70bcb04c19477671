"""The selected sparse pattern of one causal prefill, shared by every prefill method and both backends.

A pattern is a set of (query, key) pairs per head, described as
  * whole tiles of `q_block` rows x `kv_block` keys (a boolean tile grid), clipped to the causal triangle, plus
  * optional exact key columns (MInference verticals): column c is attended by every query at or after c.
Methods produce patterns; backends execute them; `attended_pairs` counts them for the compression report.
A tile-only pattern may come as block-mask indices with its pair counts (`TileIndex`, emitted by a selection
kernel) instead of a grid: the fast backend uses them as they are, and the grid is built only if asked for.
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
class TileIndex:
    """A tile pattern already in FlexAttention's block-mask form, with its pair counts (no tile grid).

    Per (batch, head, query tile): the kept partial (diagonal) and full key tiles, counts int32 (B, H, nqb)
    and indices int32 (B, H, nqb, nkb) listing the kept tiles first in ascending order, then the others
    (each row a permutation of the key tiles); `pairs` float64 (B, H): attended causal pairs (exact).
    """

    part_num: torch.Tensor
    part_idx: torch.Tensor
    full_num: torch.Tensor
    full_idx: torch.Tensor
    pairs: torch.Tensor

    def grid(self) -> torch.Tensor:
        """The kept tiles as a bool grid (B, H, nqb, nkb)."""
        nkb = self.part_idx.shape[-1]
        ranks = torch.arange(nkb, device=self.part_idx.device)
        out = torch.zeros(self.part_idx.shape, dtype=torch.bool, device=self.part_idx.device)
        out.scatter_(-1, self.part_idx.long(), ranks < self.part_num[..., None])
        full = torch.zeros_like(out).scatter_(-1, self.full_idx.long(), ranks < self.full_num[..., None])
        return out | full


class BlockPattern:
    """Selected pairs of a causal prefill of `seq_len` tokens for each (batch, head).

    Attributes:
        seq_len: number of queries = number of keys.
        q_block: tile height (queries per tile).
        kv_block: tile width (keys per tile).
        blocks: bool (B, H, ceil(L/q_block), ceil(L/kv_block)); True tiles are attended (their causal part).
            A pattern made from `tiles` builds it on first use only (the fast backend never needs it).
        columns: optional long (B, H, C), ascending, distinct per head; value `seq_len` marks padding.
        tiles: optional `TileIndex`, the same tiles as block-mask indices (selection kernels emit it).
        column_mask: optional bool (B, H, L), the exact columns as flags instead of `columns`. Their list needs
            the column count on the host; it is copied without stopping the device when the pattern is made
            and read when the list is first asked for, so a backend can queue work that needs only the flags
            (the tile pass) before it waits.
        pairs: optional float64 (B, H), the attended pairs when the method has counted them already.
        diagonal_tiles_held: the maker guarantees that every query tile's diagonal tiles (the key tiles its
            own queries span) are selected, as vertical_slash's forced local diagonals do. The one-call
            backend (`sparse_eval.backends.gathered`) needs that; with the promise it skips the host read
            that would otherwise check it, so the call queues without stopping the device.
    """

    def __init__(
        self,
        seq_len: int,
        q_block: int,
        kv_block: int,
        blocks: torch.Tensor | None = None,
        columns: torch.Tensor | None = None,
        tiles: TileIndex | None = None,
        column_mask: torch.Tensor | None = None,
        pairs: torch.Tensor | None = None,
        diagonal_tiles_held: bool = False,
    ) -> None:
        self.seq_len, self.q_block, self.kv_block = seq_len, q_block, kv_block
        self.tiles, self.column_mask, self.pairs = tiles, column_mask, pairs
        self.diagonal_tiles_held = diagonal_tiles_held
        self._columns = columns
        self._blocks = blocks
        if columns is not None and column_mask is not None:
            raise ValueError("give the exact columns as columns (a list) or column_mask (flags), not both")
        if column_mask is not None and (
            column_mask.dtype != torch.bool or column_mask.shape[-1] != seq_len or column_mask.dim() != 3
        ):
            raise ValueError(
                f"column_mask must be a bool tensor (B, H, {seq_len}), got {column_mask.dtype} "
                f"{tuple(column_mask.shape)}"
            )
        self._column_count = None if column_mask is None else _HostCount(column_mask.sum(-1).amax())
        nqb, nkb = self.num_q_blocks, self.num_kv_blocks
        if blocks is None and tiles is None:
            raise ValueError("a BlockPattern needs blocks (a bool tile grid) or tiles (a TileIndex)")
        if blocks is not None and (blocks.dtype != torch.bool or tuple(blocks.shape[-2:]) != (nqb, nkb)):
            raise ValueError(
                f"blocks must be a bool tensor (B, H, {nqb}, {nkb}) for seq_len={seq_len}, "
                f"q_block={q_block}, kv_block={kv_block}; got {blocks.dtype} {tuple(blocks.shape)}"
            )
        if tiles is not None and tuple(tiles.part_idx.shape[-2:]) != (nqb, nkb):
            raise ValueError(f"tiles {tuple(tiles.part_idx.shape)} must index ({nqb}, {nkb}) tiles")
        for label, cols in (("columns", columns), ("column_mask", column_mask)):
            if cols is not None and cols.shape[:2] != self.batch_heads:
                raise ValueError(f"{label} {tuple(cols.shape)} must share (B, H) with blocks")

    @property
    def columns(self) -> torch.Tensor | None:
        """The exact columns as ascending indices (B, H, C) padded with `seq_len`, or None without columns.
        From `column_mask`, built on first use (waits for the column count only)."""
        if self._columns is None and self.column_mask is not None:
            assert self._column_count is not None
            self._columns = columns_from_mask(self.column_mask, width=self._column_count.value())
        return self._columns

    @property
    def has_columns(self) -> bool:
        """Exact columns were given (as a list or as flags; possibly none selected). Never waits."""
        return self._columns is not None or self.column_mask is not None

    def column_flags(self) -> torch.Tensor:
        """bool (B, H, L): True at the exact columns (the flags as given, or scattered from the list)."""
        if self.column_mask is not None:
            return self.column_mask
        cols = self.columns
        assert cols is not None, "column_flags() of a pattern without columns"
        flags = torch.zeros(*cols.shape[:2], self.seq_len + 1, dtype=torch.bool, device=cols.device)
        return flags.scatter_(-1, cols.clamp(max=self.seq_len), True)[..., : self.seq_len]

    @property
    def blocks(self) -> torch.Tensor:
        if self._blocks is None:
            assert self.tiles is not None
            self._blocks = self.tiles.grid()
        return self._blocks

    @property
    def batch_heads(self) -> tuple[int, ...]:
        grid = self._blocks if self._blocks is not None else self.tiles.part_idx  # type: ignore[union-attr]
        return tuple(grid.shape[:2])

    @property
    def device(self) -> torch.device:
        grid = self._blocks if self._blocks is not None else self.tiles.part_idx  # type: ignore[union-attr]
        return grid.device

    @property
    def num_q_blocks(self) -> int:
        return _ceil_div(self.seq_len, self.q_block)

    @property
    def num_kv_blocks(self) -> int:
        return _ceil_div(self.seq_len, self.kv_block)

    def __repr__(self) -> str:
        form = "tiles" if self._blocks is None else "blocks"
        return (
            f"BlockPattern(seq_len={self.seq_len}, q_block={self.q_block}, kv_block={self.kv_block}, "
            f"batch_heads={self.batch_heads}, form={form}, columns={self.columns is not None})"
        )


class _HostCount:
    """A device scalar copied to the host without stopping the device: on CUDA an asynchronous copy into
    pinned memory and an event; `value()` waits for that event only, not for work queued after it."""

    def __init__(self, count: torch.Tensor) -> None:
        self._event: torch.cuda.Event | None = None
        if count.is_cuda:
            self._host = torch.empty((), dtype=count.dtype, pin_memory=True)
            self._host.copy_(count, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
        else:
            self._host = count

    def value(self) -> int:
        if self._event is not None:
            self._event.synchronize()
        return int(self._host)


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
    """(causal, full) bool (nqb, nkb): tiles holding any causal pair, and tiles whose pairs are all causal.
    Cached per shape and device (~45 small operations to build, asked for several times per layer); do not
    modify them."""
    return _tile_kinds(seq_len, q_block, kv_block, torch.device(device))


@lru_cache(maxsize=16)
def _tile_kinds(seq_len: int, q_block: int, kv_block: int, device: torch.device) -> tuple[torch.Tensor, ...]:
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
    if pattern.pairs is not None:
        return pattern.pairs
    if pattern.tiles is not None and not pattern.has_columns:
        return pattern.tiles.pairs
    total = tile_pairs(pattern.blocks, tile_pair_counts(L, bq, bk, pattern.blocks.device))
    if pattern.columns is None or pattern.columns.numel() == 0:
        return total
    return total + column_costs(pattern.blocks, L, bq, bk, pattern.columns).sum(-1)


def dense_mask(pattern: BlockPattern) -> torch.Tensor:
    """The pattern as a boolean (B, H, L, L) mask (causal), for the reference backend and the tests."""
    L, bq, bk = pattern.seq_len, pattern.q_block, pattern.kv_block
    device = pattern.blocks.device
    mask = pattern.blocks.repeat_interleave(bq, dim=-2)[..., :L, :].repeat_interleave(bk, dim=-1)[..., :L]
    if pattern.has_columns:
        mask = mask | pattern.column_flags()[..., None, :]
    causal = torch.ones(L, L, dtype=torch.bool, device=device).tril()
    return mask & causal


def columns_from_mask(mask: torch.Tensor, width: int | None = None) -> torch.Tensor:
    """Selected key columns of a bool (B, H, L) mask as ascending indices (B, H, C), padded with L.
    `width` = the largest count of a head, when known (else one host read)."""
    L = mask.shape[-1]
    if width is None:
        width = int(mask.sum(-1).max().item()) if mask.numel() else 0
    # Stable compaction instead of a sort: selected column c goes to slot (selected before c); the others
    # to a spare slot `width` that is cut off.
    slot = torch.where(mask, torch.cumsum(mask, -1) - 1, width)
    idx = torch.arange(L, device=mask.device).expand_as(mask)
    out = torch.full((*mask.shape[:-1], width + 1), L, dtype=torch.long, device=mask.device)
    return out.scatter_(-1, slot, torch.where(mask, idx, L))[..., :width]
