"""Fast GPU backend: execute a `BlockPattern` with compiled FlexAttention.

Tiles become a `BlockMask` built directly from per-head block indices (`BlockMask.from_kv_blocks`, indices
padded to the full block count); tiles entirely below the diagonal are passed as "full" blocks so the kernel
skips mask evaluation there. A pattern with exact key columns (verticals) runs as one FlashAttention-4 call
over per-query-tile key lists where it can (`sparse_eval.backends.gathered`: FA4 installed, diagonal tiles
selected); otherwise as a second FlexAttention call over the gathered columns while the tile pass skips those
key positions, so no pair counts twice, the two partial results merged through their log-sum-exp.
FlexAttention must be compiled: uncompiled it silently ignores the block indices.

Kernels: FlexAttention's FLASH backend (FlashAttention-4, `longtasks[flash]`) runs every pass where it is usable
(`sparse_eval.backends.flash`: installed, Hopper or newer, `SPARSE_EVAL_FLASH` not "off") and the tiles are
multiples of 64 (FA4's smallest tile: 128 x 64, 64 x 64 and 128 x 128 run, 16 x 16 does not); everything else,
and a kind of call that failed once, runs on the Triton backend. The two passes of a pattern with exact columns
return their log-sum-exp for the merge, and its base differs by torch version: torch 2.11 multiplies FA4's
natural-log LSE by ln 2 as if it were log2 (pytorch issue 181645; later releases return it natural). Measured on
the H200 (torch 2.11, flash-attn-4 4.0.0b36), that was the whole fault of the earlier FLASH column passes (outputs
right to 2e-3, LSE off by that factor, so the merge weighted the passes wrongly: relative error 0.13-0.22), so
`_call` probes FLASH's base once per (device, dtype, head size) against a float32 log-sum-exp and rescales; a
base that matches no known one sends those passes to Triton. FLASH is compiled for static shapes (it has no
dynamic-shape path).
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import torch

from sparse_eval.backends import flash, gathered, tile_index
from sparse_eval.backends.fused import fused
from sparse_eval.backends.pattern import BlockPattern, tile_kinds

COLUMN_BLOCK = 64  # gathered columns per tile of the vertical pass (a multiple of the kernel's BLOCK_N)
_MIN_RECOMPILE_LIMIT = 128  # each new (length, budget) shape recompiles; eager fallback would be dense
_FLASH_MIN_TILE = 64  # FA4 tiles: 64 or 128 rows, 64 or 128 keys on Hopper (d = 128)
_FLASH_MAX_SHAPES = 48  # distinct static FLASH shapes per process before new ones go to Triton (recompiles)
FLASH_KINDS = frozenset({"tiles", "tiles without columns", "column pass"})  # calls FLASH may run
_LN2 = math.log(2.0)

_compiled: Callable[..., Any] | None = None
_compiled_flash: Callable[..., Any] | None = None
_compiled_merge: Callable[..., Any] | None = None
_flash_shapes: set[tuple[Any, ...]] = set()
backend_counts: Counter[str] = Counter()  # FlexAttention calls per backend and kind (benchmarks read it)
_flash_lse_factors: dict[tuple[Any, ...], float | None] = {}  # probed once per device, dtype, d
_column_tiles_broken = False  # the tile-pass index kernel failed once: torch path from then on


def _merge_fn(
    out: torch.Tensor, lse: torch.Tensor, col_out: torch.Tensor, col_lse: torch.Tensor
) -> torch.Tensor:
    """Merge two softmax partitions: weight of the tile part = sigmoid(lse_tiles - lse_columns)."""
    w = torch.sigmoid(lse.float() - col_lse.float())[..., None]
    return (out.float() * w + col_out.float() * (1 - w)).to(out.dtype)


def _merge(
    out: torch.Tensor, lse: torch.Tensor, col_out: torch.Tensor, col_lse: torch.Tensor
) -> torch.Tensor:
    """`_merge_fn` compiled into one fused kernel on CUDA (eager elsewhere)."""
    global _compiled_merge
    if not out.is_cuda:
        return _merge_fn(out, lse, col_out, col_lse)
    if _compiled_merge is None:
        _compiled_merge = torch.compile(_merge_fn, dynamic=True)
    return _compiled_merge(out, lse, col_out, col_lse)


def _raise_recompile_limit() -> None:
    import torch._dynamo

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, _MIN_RECOMPILE_LIMIT)


def _flex() -> Callable[..., Any]:
    """The compiled `flex_attention` for the Triton backend (compiled once per process)."""
    global _compiled
    if _compiled is None:
        from torch.nn.attention.flex_attention import flex_attention

        _raise_recompile_limit()
        _compiled = torch.compile(flex_attention)
    return _compiled


def _flex_flash() -> Callable[..., Any]:
    """The compiled `flex_attention` for the FLASH backend: static shapes (its only supported mode)."""
    global _compiled_flash
    if _compiled_flash is None:
        from torch.nn.attention.flex_attention import flex_attention

        _raise_recompile_limit()
        _compiled_flash = torch.compile(flex_attention, dynamic=False)
    return _compiled_flash


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


@fused
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


def _tile_indices(pattern: BlockPattern) -> tuple[torch.Tensor, ...]:
    """(part_num, part_idx, full_num, full_idx) of a tile-only pattern: its own index form when the method
    emitted one, else from its grid (the row kernel on CUDA, `selected_first` elsewhere); same tensors."""
    tiles = pattern.tiles
    if tiles is None:
        L, bq, bk = pattern.seq_len, pattern.q_block, pattern.kv_block
        module = tile_index.kernel_for(pattern.blocks, pattern.num_kv_blocks)
        if module is not None:
            tiles = tile_index.index_from_grid(module, pattern.blocks, L, bq, bk)
            pattern.tiles = tiles
        else:
            causal_tiles, full_tiles = tile_kinds(L, bq, bk, pattern.blocks.device)
            sel = pattern.blocks & causal_tiles
            return (*selected_first(sel & ~full_tiles), *selected_first(sel & full_tiles))
    return tiles.part_num, tiles.part_idx, tiles.full_num, tiles.full_idx


def _kernel_options(q_block: int, kv_block: int, device: torch.device) -> dict[str, Any] | None:
    """Kernel tile sizes that divide the pattern's tiles (the H100-class default is 128 x 64 for bf16), and
    TMA loads on Hopper: measured on an H200, 5-6% faster dense causal FlexAttention at 32k and 128k."""
    opts: dict[str, Any] = {}
    if q_block % 128:
        opts["BLOCK_M"] = math.gcd(q_block, 128)
    if kv_block % 64:
        opts["BLOCK_N"] = math.gcd(kv_block, 64)
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] == 9:
        opts["USE_TMA"] = True
    return opts or None


def _call(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    block_mask: Any,
    scaling: float,
    gqa: bool,
    opts: dict[str, Any] | None,
    lse: bool,
    kind: str = "tiles",
) -> Any:
    """One FlexAttention call: on the FLASH backend when it may run this kind of call, else on Triton."""
    bq, bk = block_mask.BLOCK_SIZE
    flash_kind = ("flex " + kind, bq, bk, query.dtype, query.shape[-1])
    shape = (*flash_kind, tuple(query.shape), tuple(key.shape))
    common = {"block_mask": block_mask, "scale": scaling, "enable_gqa": gqa, "return_lse": lse}
    if (
        kind in FLASH_KINDS
        and bq % _FLASH_MIN_TILE == 0
        and bk % _FLASH_MIN_TILE == 0
        and flash.flex_flash_usable(query.device)
        and not flash.failed(flash_kind)
        and (shape in _flash_shapes or len(_flash_shapes) < _FLASH_MAX_SHAPES)
    ):
        try:
            factor = _flash_lse_factor(query) if lse else 1.0
            if factor is None:
                raise RuntimeError("FLASH's log-sum-exp is neither natural nor a known rescaling of it")
            result = _flex_flash()(query, key, value, **common, kernel_options={"BACKEND": "FLASH"})
            _flash_shapes.add(shape)
            backend_counts[f"FLASH {kind}"] += 1
            if lse and factor != 1.0:
                return result[0], result[1] * factor
            return result
        except Exception as error:  # an unsupported configuration: this kind of call runs on Triton
            flash.record_failure(flash_kind, error)
    backend_counts[f"TRITON {kind}"] += 1
    return _flex()(query, key, value, **common, kernel_options=opts)


def lse_to_natural_factor(returned: torch.Tensor, natural: torch.Tensor, tol: float = 0.02) -> float | None:
    """The factor that turns a FLASH log-sum-exp into natural log, from one probe against a float32
    reference: 1 where it already is natural; 1 / ln 2 where torch multiplied FA4's natural LSE by ln 2 as
    if it were log2 (torch 2.11; pytorch issue 181645, fixed in later releases); ln 2 for log2. None where it
    matches none of them (then FLASH must not run a pass whose LSE is merged)."""
    returned, natural = returned.float(), natural.float()
    size = float(natural.abs().max().clamp(min=1.0))
    for factor in (1.0, 1.0 / _LN2, _LN2):
        if float((returned * factor - natural).abs().max()) <= tol * size:
            return factor
    return None


def _flash_lse_factor(query: torch.Tensor) -> float | None:
    """`lse_to_natural_factor` of this torch's FLASH path, probed once per (device, dtype, head dim) on a
    small causal problem (the base differs between torch versions, so it is measured, not assumed)."""
    probe_key = (query.device, query.dtype, query.shape[-1])
    if probe_key not in _flash_lse_factors:
        from torch.nn.attention.flex_attention import create_block_mask

        n, d = 256, query.shape[-1]
        g = torch.Generator(device=query.device).manual_seed(0)
        q, k, v = (torch.randn(1, 1, n, d, generator=g, device=query.device).to(query.dtype) for _ in "qkv")
        mask = create_block_mask(_causal, 1, 1, n, n, device=query.device, BLOCK_SIZE=128)
        opts = {"BACKEND": "FLASH"}
        _, lse = _flex_flash()(q, k, v, block_mask=mask, scale=d**-0.5, return_lse=True, kernel_options=opts)
        scores = (q.float() @ k.float().transpose(-1, -2)) * d**-0.5
        causal = torch.ones(n, n, dtype=torch.bool, device=query.device).tril()
        natural = torch.logsumexp(scores.masked_fill(~causal, float("-inf")), dim=-1)
        _flash_lse_factors[probe_key] = lse_to_natural_factor(lse, natural)
    return _flash_lse_factors[probe_key]


def flex_attention_pattern(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, pattern: BlockPattern, scaling: float
) -> torch.Tensor:
    """Attention of q (B, Hq, L, D) over k/v (B, Hkv, L, D) restricted to `pattern` (built for CUDA; CPU
    works through inductor's C++ FlexAttention, slowly).

    With exact columns, the tile pass skips the column positions (a per-key lookup, only in tiles that
    hold a column) and the column pass attends each column for every query at or after it: the two passes
    partition the pattern's pairs, and nearly all column tiles are mask-free "full" tiles.
    """
    L, bq, bk = pattern.seq_len, pattern.q_block, pattern.kv_block
    device = query.device
    gqa = query.shape[1] != key.shape[1]
    opts = _kernel_options(bq, bk, device)
    listed = pattern.column_mask is None  # a list's width is known; flags wait until the tile pass is queued
    if not pattern.has_columns or (listed and pattern.columns.shape[-1] == 0):  # type: ignore[union-attr]
        mask = _block_mask(*_tile_indices(pattern), (bq, bk), _causal, (L, L))
        return _call(query, key, value, mask, scaling, gqa, opts, lse=False)

    one_call = gathered.attention(query, key, value, pattern, scaling)
    if one_call is not None:
        backend_counts["FLASH gathered keys"] += 1
        return one_call
    out, lse = _tile_pass(query, key, value, pattern, scaling)
    if pattern.columns.shape[-1] == 0:  # type: ignore[union-attr]  # flags, none set: tiles only
        return out
    col_out, col_lse = _column_pass(query, key, value, pattern, scaling)
    return _merge(out, lse, col_out, col_lse)


def _tile_pass(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, pattern: BlockPattern, scaling: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention over the pattern's causal tiles without its column positions, with its log-sum-exp."""
    L, bq, bk = pattern.seq_len, pattern.q_block, pattern.kv_block
    device = query.device
    gqa = query.shape[1] != key.shape[1]
    opts = _kernel_options(bq, bk, device)
    is_col = pattern.column_flags().to(torch.int32).contiguous()  # int32: a FA4 aux tensor
    nkb = pattern.num_kv_blocks
    col_in_tile = torch.nn.functional.pad(is_col, (0, nkb * bk - L)).unflatten(-1, (nkb, bk)).amax(-1) > 0
    part_num, part_idx, full_num, full_idx = _tile_pass_indices(pattern.blocks, col_in_tile, L, bq, bk)

    def tiles_without_columns(
        b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor
    ) -> torch.Tensor:
        return (q_idx >= kv_idx) & (is_col[b, h, kv_idx] == 0)

    mask = _block_mask(part_num, part_idx, full_num, full_idx, (bq, bk), tiles_without_columns, (L, L))
    return _call(query, key, value, mask, scaling, gqa, opts, lse=True, kind="tiles without columns")


def _tile_pass_indices(
    blocks: torch.Tensor, col_in_tile: torch.Tensor, L: int, bq: int, bk: int
) -> tuple[torch.Tensor, ...]:
    """(part_num, part_idx, full_num, full_idx) of the tile pass: selected causal tiles, "full" where all
    pairs are causal and no column lies in the tile's keys. One Triton program per tile row on CUDA
    (`sparse_eval.kernels.column_tiles`), else `selected_first` on the grid; the same tensors either way."""
    global _column_tiles_broken
    if blocks.is_cuda and not _column_tiles_broken:
        try:
            from sparse_eval.kernels import column_tiles

            return column_tiles.split_tiles(blocks, _tile_kind_codes(L, bq, bk, blocks.device), col_in_tile)
        except ImportError:
            pass  # no triton: the torch path
        except Exception as error:  # a kernel that cannot compile here: the torch path gives the same lists
            _column_tiles_broken = True
            warnings.warn(
                f"column_tiles kernel failed ({type(error).__name__}: {str(error)[:200]}); using torch",
                RuntimeWarning,
                stacklevel=2,
            )
    causal_tiles, full_tiles = tile_kinds(L, bq, bk, blocks.device)
    sel = blocks & causal_tiles
    clean = full_tiles & ~col_in_tile[..., None, :]  # (B, H, nqb, nkb): no mask needed
    return (*selected_first(sel & ~clean), *selected_first(sel & clean))


@lru_cache(maxsize=16)
def _tile_kind_codes(L: int, bq: int, bk: int, device: torch.device) -> torch.Tensor:
    """int8 (nqb, nkb): 0 no causal pair, 1 all pairs causal, 2 partly causal (cached per shape)."""
    causal, full = tile_kinds(L, bq, bk, device)
    return (causal.to(torch.int8) * 2 - full.to(torch.int8)).contiguous()


def _causal(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
    return q_idx >= kv_idx


def gathered_columns(
    key: torch.Tensor, value: torch.Tensor, pattern: BlockPattern, num_q_heads: int
) -> tuple[torch.Tensor, ...]:
    """(cols, k_cols, v_cols, n_any, n_full) of a pattern's exact columns: the column list padded to
    `padded_column_count` with `seq_len`, each query head's columns gathered from its KV head (B, Hq, C, D),
    and per query tile the column tiles it needs at all and those it needs without a mask (a prefix each)."""
    assert pattern.columns is not None
    L, bq = pattern.seq_len, pattern.q_block
    B, Hkv = key.shape[:2]
    Hq = num_q_heads
    cols = pattern.columns
    pad = padded_column_count(cols.shape[-1]) - cols.shape[-1]
    if pad:
        cols = torch.cat(
            [cols, torch.full((*cols.shape[:-1], pad), L, dtype=cols.dtype, device=cols.device)], -1
        )
    # Gather each query head's columns from its KV head without repeating the whole cache.
    head_rows = torch.arange(B, device=cols.device)[:, None] * Hkv + torch.arange(Hq, device=cols.device)[
        None, :
    ] // (Hq // Hkv)
    safe = cols.clamp(max=L - 1)
    k_cols = key.reshape(B * Hkv, L, -1)[head_rows[..., None], safe]
    v_cols = value.reshape(B * Hkv, L, -1)[head_rows[..., None], safe]
    # Columns are ascending: tile c is needed by query tile i once its first column is <= the tile's last
    # row, and needs no mask once its last column is <= the tile's first row (padding counts as L).
    nqb = pattern.num_q_blocks
    first_rows = torch.arange(nqb, device=cols.device) * bq
    last_rows = torch.clamp(first_rows + bq, max=L) - 1
    firsts = cols[..., ::COLUMN_BLOCK].contiguous()
    lasts = cols[..., COLUMN_BLOCK - 1 :: COLUMN_BLOCK].contiguous()
    n_any = torch.searchsorted(firsts, last_rows.expand(B, Hq, nqb).contiguous(), right=True)
    n_full = torch.searchsorted(lasts, first_rows.expand(B, Hq, nqb).contiguous(), right=True)
    return cols, k_cols, v_cols, n_any, n_full


def _column_pass(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, pattern: BlockPattern, scaling: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of every query over its head's gathered key columns at or before it."""
    L, bq = pattern.seq_len, pattern.q_block
    B, Hq = query.shape[:2]
    cols, k_cols, v_cols, n_any, n_full = gathered_columns(key, value, pattern, Hq)
    n_cols = cols.shape[-1]
    nqb = pattern.num_q_blocks
    n_tiles = n_cols // COLUMN_BLOCK
    ranks = torch.arange(n_tiles, device=cols.device)
    full_idx = ranks.expand(B, Hq, nqb, n_tiles).to(torch.int32).contiguous()
    part_idx = ((ranks + n_full[..., None]) % n_tiles).to(torch.int32)
    cols_i = cols.to(torch.int32)

    def at_or_after(
        b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor
    ) -> torch.Tensor:
        return cols_i[b, h, kv_idx] <= q_idx

    mask = _block_mask(
        (n_any - n_full).to(torch.int32),
        part_idx,
        n_full.to(torch.int32),
        full_idx,
        (bq, COLUMN_BLOCK),
        at_or_after,
        (L, n_cols),
    )
    opts = _kernel_options(bq, COLUMN_BLOCK, query.device)
    return _call(query, k_cols, v_cols, mask, scaling, False, opts, lse=True, kind="column pass")


def padded_column_count(n: int) -> int:
    """Gathered columns rounded up to a power of two of `COLUMN_BLOCK`-column tiles (at least one tile):
    padding columns (index L) are never attended, and few distinct shapes keep recompiles few."""
    tiles = max(1, -(-n // COLUMN_BLOCK))
    return COLUMN_BLOCK * (1 << (tiles - 1).bit_length())
