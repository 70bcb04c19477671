"""Fast GPU backend: execute a `BlockPattern` with compiled FlexAttention.

Tiles become a `BlockMask` built directly from per-head block indices (`BlockMask.from_kv_blocks`, indices
padded to the full block count); tiles entirely below the diagonal are passed as "full" blocks so the kernel
skips mask evaluation there. Exact key columns (verticals) run as a second FlexAttention call over the
gathered columns, masked so no pair is counted twice, and the two partial results are merged through their
log-sum-exp. FlexAttention must be compiled: uncompiled it silently ignores the block indices.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch

from sparse_eval.backends.pattern import BlockPattern, tile_kinds

COLUMN_BLOCK = 64  # gathered columns per tile of the vertical pass (a multiple of the kernel's BLOCK_N)
_MIN_RECOMPILE_LIMIT = 64  # every new (length, budget) shape recompiles; falling back to eager would be dense

_compiled: Callable[..., Any] | None = None


def _flex() -> Callable[..., Any]:
    """The compiled `flex_attention` (compiled once per process)."""
    global _compiled
    if _compiled is None:
        import torch._dynamo
        from torch.nn.attention.flex_attention import flex_attention

        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, _MIN_RECOMPILE_LIMIT)
        _compiled = torch.compile(flex_attention)
    return _compiled


def _block_mask(
    kv_num: torch.Tensor,
    kv_idx: torch.Tensor,
    full_num: torch.Tensor | None,
    full_idx: torch.Tensor | None,
    block_size: tuple[int, int],
    mask_mod: Callable[..., torch.Tensor],
    seq_lengths: tuple[int, int],
) -> Any:
    from torch.nn.attention.flex_attention import BlockMask

    kwargs: dict[str, Any] = {"BLOCK_SIZE": block_size, "mask_mod": mask_mod, "seq_lengths": seq_lengths}
    if "compute_q_blocks" in inspect.signature(BlockMask.from_kv_blocks).parameters:
        kwargs["compute_q_blocks"] = False  # forward only: skip the transposed (backward) indices
    return BlockMask.from_kv_blocks(kv_num, kv_idx, full_num, full_idx, **kwargs)


def selected_first(sel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(count, indices) int32 of the True entries of `sel` along the last dim, listed first in ascending
    order and followed by the False ones, so the index tensor always spans the full block count."""
    n = sel.shape[-1]
    sel_i = sel.to(torch.int32)
    count = sel_i.sum(-1, dtype=torch.int32)
    pos_true = torch.cumsum(sel_i, -1, dtype=torch.int32) - 1
    pos_false = count[..., None] + torch.cumsum(1 - sel_i, -1, dtype=torch.int32) - 1
    pos = torch.where(sel, pos_true, pos_false).to(torch.int64)
    src = torch.arange(n, device=sel.device, dtype=torch.int32).expand_as(sel_i)
    out = torch.empty_like(sel_i).scatter_(-1, pos, src)
    return count, out


def _kernel_options(q_block: int, kv_block: int) -> dict[str, Any] | None:
    """Kernel tile sizes that divide the pattern's tiles (the H100-class default is 128 x 64 for bf16)."""
    opts: dict[str, Any] = {}
    if q_block % 128:
        opts["BLOCK_M"] = math.gcd(q_block, 128)
    if kv_block % 64:
        opts["BLOCK_N"] = math.gcd(kv_block, 64)
    return opts or None


def _call(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    block_mask: Any,
    scaling: float,
    gqa: bool,
    opts: dict[str, Any] | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    out, lse = _flex()(
        query,
        key,
        value,
        block_mask=block_mask,
        scale=scaling,
        enable_gqa=gqa,
        return_lse=True,
        kernel_options=opts,
    )
    return out, lse


def flex_attention_pattern(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, pattern: BlockPattern, scaling: float
) -> torch.Tensor:
    """Attention of q (B, Hq, L, D) over k/v (B, Hkv, L, D) restricted to `pattern`, on CUDA."""
    if not query.is_cuda:
        raise ValueError("the flex backend runs on CUDA tensors; use backend='reference' on CPU")
    L, bq, bk = pattern.seq_len, pattern.q_block, pattern.kv_block
    device = query.device
    causal_tiles, full_tiles = tile_kinds(L, bq, bk, device)
    sel = pattern.blocks & causal_tiles
    full_sel = sel & full_tiles
    part_sel = sel & ~full_tiles
    part_num, part_idx = selected_first(part_sel)
    full_num, full_idx = selected_first(full_sel)

    def causal(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        return q_idx >= kv_idx

    tiles_mask = _block_mask(part_num, part_idx, full_num, full_idx, (bq, bk), causal, (L, L))
    gqa = query.shape[1] != key.shape[1]
    out, lse = _call(query, key, value, tiles_mask, scaling, gqa, _kernel_options(bq, bk))
    if pattern.columns is None or pattern.columns.shape[-1] == 0:
        return out
    col_out, col_lse = _column_pass(query, key, value, pattern, scaling)
    # Merge two softmax partitions: weight of the tile part = sigmoid(lse_tiles - lse_columns).
    w = torch.sigmoid(lse.float() - col_lse.float())[..., None]
    return (out.float() * w + col_out.float() * (1 - w)).to(query.dtype)


def _column_pass(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, pattern: BlockPattern, scaling: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of every query over its head's gathered key columns, excluding pairs already in a tile."""
    assert pattern.columns is not None
    L, bq, bk = pattern.seq_len, pattern.q_block, pattern.kv_block
    B, Hq = query.shape[:2]
    Hkv = key.shape[1]
    cols = pattern.columns
    pad = (-cols.shape[-1]) % COLUMN_BLOCK
    if pad:
        cols = torch.cat(
            [cols, torch.full((*cols.shape[:-1], pad), L, dtype=cols.dtype, device=cols.device)], -1
        )
    n_cols = cols.shape[-1]
    # Gather each query head's columns from its KV head without repeating the whole cache.
    head_rows = torch.arange(B, device=cols.device)[:, None] * Hkv + torch.arange(Hq, device=cols.device)[
        None, :
    ] // (Hq // Hkv)
    safe = cols.clamp(max=L - 1)
    flat_k = key.reshape(B * Hkv, L, -1)
    flat_v = value.reshape(B * Hkv, L, -1)
    k_cols = flat_k[head_rows[..., None], safe]
    v_cols = flat_v[head_rows[..., None], safe]
    # Gathered column tile c may be needed by query tile i once its first column is <= the tile's last row.
    nqb = pattern.num_q_blocks
    firsts = cols[..., ::COLUMN_BLOCK].contiguous()
    last_rows = torch.clamp(torch.arange(1, nqb + 1, device=cols.device) * bq, max=L) - 1
    kv_num = torch.searchsorted(firsts, last_rows.expand(B, Hq, nqb).contiguous(), right=True).to(torch.int32)
    n_tiles = n_cols // COLUMN_BLOCK
    kv_idx = (
        torch.arange(n_tiles, device=cols.device, dtype=torch.int32).expand(B, Hq, nqb, n_tiles).contiguous()
    )
    # Lookup table of selected tiles with one spare (False) column so padding positions index safely.
    table = torch.cat([pattern.blocks, torch.zeros_like(pattern.blocks[..., :1])], dim=-1)
    cols_i = cols.to(torch.int32)

    def vertical(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        pos = cols_i[b, h, kv_idx]
        covered = table[b, h, q_idx // bq, pos // bk]
        return (pos <= q_idx) & ~covered

    mask = _block_mask(kv_num, kv_idx, None, None, (bq, COLUMN_BLOCK), vertical, (L, n_cols))
    return _call(query, k_cols, v_cols, mask, scaling, False, _kernel_options(bq, COLUMN_BLOCK))
