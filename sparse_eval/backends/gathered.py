"""A tiles + exact-columns pattern (vertical_slash) as ONE FlashAttention-4 call over per-query-tile key lists.

Why: FlexAttention runs such a pattern as two passes, a tile pass that must mask the exact columns out of
nearly every tile and a column pass over the gathered columns, merged by their log-sum-exp (60.7 ms at 128k,
c = 5, on an H200). FA4 reads keys through a page table; with one-key pages every query tile can list exactly
the keys it attends, as MInference's kernel does, and the whole pattern runs in one mask-free call at FA4's
speed (46.3 ms there, the lists included; `benchmarks/probe_gathered_keys.py`). Each (batch, head, query
tile) becomes one FA4 sequence of `q_block` queries whose key list (`sparse_eval.kernels.key_lists`) ends
with the tile's own diagonal keys, so FA4's bottom-right causal mask is the pattern's causal mask; every
earlier key precedes every query of the tile. The pairs are exactly the pattern's: selected tiles, plus each
column for the rows after its tile that no selected tile covers.

It needs FA4 (`longtasks[flash]`, a Hopper or newer GPU), triton, q_block a multiple of kv_block, and every
query tile's diagonal tiles selected (vertical_slash forces them whenever n_local >= 1); `attention` returns
None otherwise, and the caller runs the two passes.

No host read when the pattern promises its diagonal tiles (`BlockPattern.diagonal_tiles_held`, as
vertical_slash's does): the page table is as wide as the sequence (no list is longer) and split into row
chunks, so the call queues without stopping the device and the host can run ahead, as in a model's forward.
At 128k that saves 0.6-1.0 ms per prefill (c = 10: 26.9 vs 27.6 ms; `benchmarks/probe_gathered_keys.py`).
Without the promise one host read sizes the table by the longest list and checks the diagonal tiles.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

from sparse_eval.backends import flash
from sparse_eval.backends.fused import fused
from sparse_eval.backends.pattern import BlockPattern
from sparse_eval.backends.scan import prefix_sums
from sparse_eval.kernels import optional

TABLE_BYTES = 4 << 30  # the most one page table may take; longer work is split into row chunks
enabled = True  # benchmarks switch this off to time the two-pass path in the same process
host_reads = False  # benchmarks switch this on to time the form that reads the longest list back
_KIND = ("gathered keys",)


def applicable(query: torch.Tensor, pattern: BlockPattern) -> bool:
    """The host-side conditions: columns, nested tiles, FA4 usable for this dtype and head size, triton."""
    return (
        enabled
        and pattern.has_columns
        and pattern.q_block % pattern.kv_block == 0
        and query.dtype in (torch.bfloat16, torch.float16)
        and query.shape[-1] in flash.FA4_HEAD_DIMS
        and flash.usable(query.device)
        and not flash.failed(_KIND)
        and optional("key_lists") is not None
    )


@lru_cache(maxsize=16)
def _lower_tiles(nqb: int, nkb: int, ratio: int, device: torch.device) -> torch.Tensor:
    """bool (nqb, nkb): key tiles wholly before query tile i (j < ratio * i)."""
    i = torch.arange(nqb, device=device)[:, None]
    return torch.arange(nkb, device=device)[None, :] < ratio * i


def key_list_lengths(pattern: BlockPattern) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lengths, n_before, diagonal_missing): int32 (B * H * nqb,) the key list length of every row and its
    head's columns before the row's first query, and a 0-d count of rows whose diagonal tiles are not all
    selected (the one-call form needs none). No host read; fused into a few kernels on CUDA."""
    bq, bk = pattern.q_block, pattern.kv_block
    lower = _lower_tiles(pattern.num_q_blocks, pattern.num_kv_blocks, bq // bk, pattern.blocks.device)
    return _lengths(pattern.blocks, pattern.column_flags(), lower, bq, bk)


@fused
def _lengths(
    blocks: torch.Tensor, flags: torch.Tensor, lower: torch.Tensor, bq: int, bk: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    L, (nqb, nkb) = flags.shape[-1], blocks.shape[-2:]
    ratio = bq // bk
    starts = torch.arange(nqb, device=blocks.device) * bq
    before = torch.nn.functional.pad(torch.cumsum(flags, -1, dtype=torch.int32), (1, 0))
    n_before = before[..., starts]  # columns at positions < the row's first query
    per_tile = torch.nn.functional.pad(flags, (0, nkb * bk - L)).unflatten(-1, (nkb, bk))
    per_tile = per_tile.sum(-1, dtype=torch.int32)
    held_lower = blocks & lower
    covered = torch.where(held_lower, per_tile[..., None, :], 0).sum(-1, dtype=torch.int32)
    rows_here = torch.clamp(L - starts, max=bq).to(torch.int32)
    lengths = n_before - covered + held_lower.sum(-1, dtype=torch.int32) * bk + rows_here
    diag = ratio * torch.arange(nqb, device=blocks.device)[:, None] + torch.arange(
        ratio, device=blocks.device
    )
    held = torch.gather(blocks, -1, diag.clamp(max=nkb - 1).expand(*blocks.shape[:-1], ratio))
    missing = ((diag < nkb) & ~held).any(-1).sum()
    return lengths.flatten(), n_before.flatten(), missing


def _pages(key: torch.Tensor, value: torch.Tensor, num_q_heads: int) -> tuple[torch.Tensor, ...]:
    """(k_pages, v_pages, page_base, page_stride): K and V as one-key pages (N, 1, 1, D) over their own
    memory (no copy when both share a layout whose strides are whole rows), the page of position 0 for each
    (batch, query head) and the pages between consecutive positions."""
    D = key.shape[-1]
    if key.stride() != value.stride() or key.stride(-1) != 1 or any(s % D for s in key.stride()[:-1]):
        key, value = key.contiguous(), value.contiguous()
    B, Hkv, L, _ = key.shape
    sb, sh, sl = (s // D for s in key.stride()[:-1])
    n_pages = sb * (B - 1) + sh * (Hkv - 1) + sl * (L - 1) + 1
    if n_pages >= 2**31:
        raise ValueError(f"{n_pages} key pages do not fit FA4's int32 page table")
    k_pages = key.as_strided((n_pages, 1, 1, D), (D, D, D, 1))
    v_pages = value.as_strided((n_pages, 1, 1, D), (D, D, D, 1))
    kv_head = torch.arange(num_q_heads, device=key.device) // (num_q_heads // Hkv)
    base = torch.arange(B, device=key.device)[:, None] * sb + kv_head[None, :] * sh
    return k_pages, v_pages, base.flatten(), sl


def attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, pattern: BlockPattern, scaling: float
) -> torch.Tensor | None:
    """The pattern's attention (B, Hq, L, D) in one FA4 call per row chunk, or None where this form cannot
    run (see the module docstring); then nothing was computed and the caller takes the two-pass path."""
    if not applicable(query, pattern):
        return None
    kernels = optional("key_lists")
    assert kernels is not None
    L, bq = pattern.seq_len, pattern.q_block
    B, Hq, _, D = query.shape
    rows = B * Hq * pattern.num_q_blocks
    try:
        from flash_attn.cute import flash_attn_varlen_func

        # Where the longest list is read back, everything that does not need it is queued before that read.
        k_pages, v_pages, page_base, page_stride = _pages(key, value, Hq)
        q_rows, seqused_q = _query_rows(query, bq)
        if pattern.diagonal_tiles_held and not host_reads:
            # No host read: a list is never longer than the causal keys of its tile (at most L), the
            # column list is as wide as the sequence, the maker promised the diagonal tiles, and the table
            # fill counts the lengths as it writes the lists.
            columns, n_before = columns_before_rows(pattern.column_flags(), bq)
            lengths = torch.empty(rows, dtype=torch.int32, device=query.device)
            width = L
        else:
            lengths, n_before, missing = key_list_lengths(pattern)
            columns = pattern.columns  # waits for the column count, copied when the pattern was made
            width, n_missing = torch.stack([lengths.max(), missing.to(torch.int32)]).tolist()
            if n_missing:
                return None
        assert columns is not None
        chunk = rows_per_table(width)
        into = None if any(t.requires_grad for t in (query, key, value)) else _forward_into()
        out = torch.empty_like(q_rows) if into is not None and chunk < rows else None
        outs = []
        for r0 in range(0, rows, chunk):
            r1 = min(rows, r0 + chunk)
            table = torch.empty(r1 - r0, width, dtype=torch.int32, device=query.device)
            kernels.fill_key_lists(
                table,
                lengths,
                r0,
                columns,
                n_before,
                pattern.blocks,
                page_base,
                page_stride,
                L,
                bq,
                pattern.kv_block,
            )
            args = (q_rows[r0:r1], k_pages, v_pages)
            kwargs = {
                "seqused_q": None if seqused_q is None else seqused_q[r0:r1],
                "seqused_k": lengths[r0:r1],
                "page_table": table,
                "softmax_scale": scaling,
                "causal": True,
            }
            if out is not None:  # each chunk writes its rows of one output: no concatenation
                assert into is not None
                written = into(*args, out=out[r0:r1], **kwargs)[0]
                if written.data_ptr() != out[r0:r1].data_ptr():  # a build that ignored `out`
                    out[r0:r1] = written
                continue
            result = flash_attn_varlen_func(*args, **kwargs)
            outs.append(result[0] if isinstance(result, tuple) else result)
    except Exception as error:  # an FA4 build without one-key pages, or a kernel that cannot compile here
        flash.record_failure(_KIND, error)
        return None
    if out is None:
        out = outs[0] if len(outs) == 1 else torch.cat(outs)
    return out.reshape(B, Hq, -1, D)[..., :L, :]


@lru_cache(maxsize=1)
def _forward_into() -> Callable[..., Any] | None:
    """FA4's internal forward where it takes a preallocated `out` (flash-attn-4 4.0.0b36 does), else None.
    The public varlen function allocates every chunk's output, and joining the row chunks of the L-wide
    table (4 at 128k) would copy the whole output once more (~0.4 ms at 128k on an H200)."""
    try:
        from flash_attn.cute.interface import _flash_attn_fwd
    except ImportError:
        return None
    wanted = {"out", "page_table", "seqused_q", "seqused_k", "softmax_scale", "causal"}
    return _flash_attn_fwd if wanted <= inspect.signature(_flash_attn_fwd).parameters.keys() else None


@fused
def columns_before_rows(flags: torch.Tensor, q_block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(columns, n_before) from the column flags (B, H, L), with no wait for their count: the columns as an
    ascending int32 list (B, H, L) padded with L, and int32 (B * H * nqb,) the columns of each row's head
    before its first query. One prefix sum (in blocks: `scan.prefix_sums`) gives both. int32, not int64: the
    table fill reads a head's list once per query tile (0.578 -> 0.556 ms for its 4 calls at 128k, c = 10, on
    an H200, the same lists; `benchmarks/results/probe_key_lists_h200.json`)."""
    L = flags.shape[-1]
    rank = prefix_sums(flags, torch.int32)
    starts = torch.arange(-(-L // q_block), device=flags.device) * q_block
    n_before = F.pad(rank, (1, 0))[..., starts]
    position = torch.arange(L, dtype=torch.int32, device=flags.device).expand_as(flags)
    # A permutation of the L slots (the columns first, the others after them in order), so the list is
    # written whole and contiguous: no spare slot to cut off, no copy per row chunk of the table fill.
    slot = torch.where(flags, rank - 1, rank[..., -1:] + position - rank).long()
    columns = torch.empty(flags.shape, dtype=torch.int32, device=flags.device)
    columns = columns.scatter_(-1, slot, torch.where(flags, position, L))
    return columns, n_before.flatten()


def _query_rows(query: torch.Tensor, q_block: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(q_rows, seqused_q): the queries as FA4 sequences of `q_block` rows (rows, q_block, 1, D), and each
    sequence's real row count where the last tile is short (zero-padded there; else None)."""
    B, H, L, D = query.shape
    nqb = -(-L // q_block)
    if L % q_block == 0:
        return query.reshape(B * H * nqb, q_block, 1, D), None
    padded = query.new_zeros(B, H, nqb * q_block, D)
    padded[..., :L, :] = query
    seqused_q = torch.full((B * H, nqb), q_block, dtype=torch.int32, device=query.device)
    seqused_q[:, -1] = L - (nqb - 1) * q_block
    return padded.reshape(B * H * nqb, q_block, 1, D), seqused_q.flatten()


def rows_per_table(width: int) -> int:
    """Rows one page table holds under `TABLE_BYTES` (at least one)."""
    return max(1, TABLE_BYTES // (4 * width))
