"""Tile patterns as block-mask indices without a tile grid: the Triton row kernel where it can run.

`sparse_eval.kernels.tile_rows` turns per-row scores (block_sparse) or a bool tile grid (any tile-only
pattern) into FlexAttention's index form and the attended pair counts in one pass. It and the other tile
kernels (`tile_kernels`: vertical_slash's diagonal tiles, flexprefill's coverage grid and query-aware prefix sums,
the pooled tile products) run on CUDA tensors when triton imports and `SPARSE_EVAL_TILE_KERNEL` is not
"off"; otherwise callers take their torch path (the same tiles: the tests pin both against the plain rules).
"off" exists to measure the torch path.
"""

from __future__ import annotations

import os
from functools import lru_cache
from types import ModuleType

import torch

from sparse_eval import kernels
from sparse_eval.backends.pattern import TileIndex, tile_kinds

ENV = "SPARSE_EVAL_TILE_KERNEL"


def tile_kernels(name: str, x: torch.Tensor) -> ModuleType | None:
    """The Triton module `sparse_eval.kernels.<name>` of a selection pass over tiles when it may run on `x`'s
    device (CUDA, triton importable, `SPARSE_EVAL_TILE_KERNEL` not "off"), else None (the torch path runs)."""
    if not x.is_cuda or os.environ.get(ENV, "auto").lower() == "off":
        return None
    return kernels.optional(name)


def kernel_for(x: torch.Tensor, num_kv_blocks: int) -> ModuleType | None:
    """The row-kernel module when it may run on `x`'s device for rows of `num_kv_blocks` tiles, else None."""
    module = tile_kernels("tile_rows", x)
    return module if module is not None and num_kv_blocks <= module.MAX_TILES else None


def tile_codes(
    seq_len: int, q_block: int, kv_block: int, device: torch.device | str, forced: torch.Tensor | None = None
) -> torch.Tensor:
    """int8 (nqb, nkb) tile kinds for the kernel: 0 not causal, 1 full, 2 forced full (`forced`, when given),
    3 partial (diagonal). Cached per shape for the shape-only table; do not modify it."""
    if forced is None:
        return _tile_codes(seq_len, q_block, kv_block, torch.device(device))
    causal, full = tile_kinds(seq_len, q_block, kv_block, device)
    codes = full.to(torch.int8) + (forced & full).to(torch.int8)
    return torch.where(causal & ~full, torch.full_like(codes, 3), codes)


@lru_cache(maxsize=16)
def _tile_codes(seq_len: int, q_block: int, kv_block: int, device: torch.device) -> torch.Tensor:
    causal, full = tile_kinds(seq_len, q_block, kv_block, device)
    return torch.where(causal & ~full, 3, full.to(torch.int8)).to(torch.int8)


def _index(parts: tuple[torch.Tensor, ...]) -> TileIndex:
    part_num, part_idx, full_num, full_idx, pairs = parts
    return TileIndex(part_num, part_idx, full_num, full_idx, pairs.sum(-1, dtype=torch.int64).double())


def index_from_scores(
    module: ModuleType,
    scores: torch.Tensor,
    codes: torch.Tensor,
    take: torch.Tensor,
    seq_len: int,
    q_block: int,
    kv_block: int,
) -> TileIndex:
    """Per row i: the forced tiles (codes 2, 3) and the `take[i]` best candidate tiles (code 1) of float32
    `scores` (B, H, nqb, nkb), ties to the lower index."""
    return _index(module.tile_rows(scores.float(), codes, take, seq_len, q_block, kv_block))


def index_from_grid(
    module: ModuleType, blocks: torch.Tensor, seq_len: int, q_block: int, kv_block: int
) -> TileIndex:
    """The causal tiles of a bool grid (B, H, nqb, nkb) in index form."""
    codes = tile_codes(seq_len, q_block, kv_block, blocks.device)
    return _index(module.tile_rows(blocks, codes, None, seq_len, q_block, kv_block))
