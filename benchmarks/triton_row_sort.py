"""Costed and not adopted (BENCHMARKS.md): a stable descending sort of each row of a float32 matrix, with the
positions it came from, as a least-significant-digit radix sort in Triton: four passes of 8 bits, each a digit
count per block of the row, a scan of the counts and a stable scatter.

The idea: torch sorts fewer than 128 long rows by sorting all entries at once with (row, position) pairs as
8-byte values, then sorting again by row, then gathering the values (`SortStable.cu`); flexprefill's selection at
128k sorts 28 rows of 524,800 tile probabilities that way in about 1.0 ms on an H200. Here every row is its own
range of the output from the start, the positions are 4 bytes, and a values-only sort moves only the keys.
Measured (`benchmarks/probe_row_sort.py`, H200): 5-7x slower than torch on every shape. The stable rank inside a
block comes from `tl.sort` of (digit, place), a bitonic network, and that network is the cost (2048-entry blocks
ran 1.3-1.4x faster than 4096).

On softmax rows the order equals `torch.sort(x, descending=True, stable=True)`, values and positions, bit for bit
(checked by the probe on the H200). Keys are the floats' bits twiddled so that unsigned order is descending float
order, so -0.0 sorts after +0.0 where torch's CPU sort keeps the two in place order as equal values; NaN is not
ordered as torch orders it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 4096  # entries per program
WARPS = 8
_DIGIT_BITS = 8
_BINS = 1 << _DIGIT_BITS
_PLACE_BITS = 13  # room for a place in the block (BLOCK <= 8192) beside the digit in one int32


@triton.jit
def _descending_key(x):
    """uint32 whose ascending order is x's descending order (float32 x)."""
    bits = x.to(tl.uint32, bitcast=True)
    ascending = tl.where((bits >> 31) != 0, ~bits, bits | 0x80000000)
    return ~ascending


@triton.jit
def _float_of_key(key):
    ascending = ~key
    bits = tl.where((ascending >> 31) != 0, ascending & 0x7FFFFFFF, ~ascending)
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def _load_keys(SRC, start, places, ok, FIRST_PASS: tl.constexpr):
    if FIRST_PASS:
        return _descending_key(tl.load(SRC + start + places, mask=ok, other=0.0))
    return tl.load(SRC + start + places, mask=ok, other=0).to(tl.uint32, bitcast=True)


@triton.jit
def _counts(SRC, COUNTS, FIRST, N, N_BLOCKS, SHIFT, FIRST_PASS: tl.constexpr, BLOCK: tl.constexpr):
    """Program (b, r): how many entries of block b of row r have each digit (COUNTS (R, BINS, N_BLOCKS)), and
    how many have a smaller digit (FIRST (R, N_BLOCKS, BINS)): where each digit's entries start in the block."""
    r = tl.program_id(1).to(tl.int64)
    b = tl.program_id(0)
    places = b * BLOCK + tl.arange(0, BLOCK)
    ok = places < N
    digit = (_load_keys(SRC, r * N, places, ok, FIRST_PASS) >> SHIFT) & 0xFF
    count = tl.histogram(digit.to(tl.int32), 256, mask=ok)
    bins = tl.arange(0, 256)
    tl.store(COUNTS + (r * 256 + bins) * N_BLOCKS + b, count)
    tl.store(FIRST + (r * N_BLOCKS + b) * 256 + bins, tl.cumsum(count, 0) - count)


@triton.jit
def _scatter(
    SRC, SRC_POS, DST, DST_POS, BEFORE, FIRST, N, N_BLOCKS, SHIFT,
    FIRST_PASS: tl.constexpr, LAST_PASS: tl.constexpr, POSITIONS: tl.constexpr, BLOCK: tl.constexpr,
    PLACE_BITS: tl.constexpr,
):  # fmt: skip
    """Program (b, r): block b of row r to its places in the pass's output, stably by digit. BEFORE
    (R, BINS, N_BLOCKS) holds, per digit and block, the row's entries that go before that block's entries of
    that digit (smaller digits, and the same digit in earlier blocks)."""
    r = tl.program_id(1).to(tl.int64)
    b = tl.program_id(0)
    start = r * N + b * BLOCK
    places = tl.arange(0, BLOCK)
    ok = b * BLOCK + places < N
    digit = (_load_keys(SRC, start, places, ok, FIRST_PASS) >> SHIFT) & 0xFF
    digit = tl.where(ok, digit.to(tl.int32), 256)  # past the row: after every digit, never stored
    # Sorting (digit, place) orders the block by digit and keeps equal digits in place order: slot p then
    # holds the entry from `place`, and its rank among its digit's entries is p - FIRST[digit].
    ordered = tl.sort((digit << PLACE_BITS) | places)
    digit = ordered >> PLACE_BITS
    place = ordered & ((1 << PLACE_BITS) - 1)
    kept = digit < 256
    dest = (
        tl.load(BEFORE + (r * 256 + digit) * N_BLOCKS + b, mask=kept, other=0)
        + places
        - tl.load(FIRST + (r * N_BLOCKS + b) * 256 + digit, mask=kept, other=0)
    )
    key = _load_keys(SRC, start, place, kept, FIRST_PASS)
    if LAST_PASS:
        tl.store(DST + r * N + dest, _float_of_key(key), mask=kept)
    else:
        tl.store(DST + r * N + dest, key.to(tl.int32, bitcast=True), mask=kept)
    if POSITIONS:
        if FIRST_PASS:  # noqa: SIM108  (a constexpr branch: only one side is compiled)
            position = b * BLOCK + place
        else:
            position = tl.load(SRC_POS + start + place, mask=kept, other=0)
        tl.store(DST_POS + r * N + dest, position, mask=kept)


def sort_rows_descending(x: torch.Tensor, positions: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(values, positions) of each row of `x` (..., N) float32 sorted in descending order, stably: as
    `torch.sort(x, dim=-1, descending=True, stable=True)`, with int32 positions (None when `positions` is
    False: then only the keys move)."""
    if x.dtype != torch.float32:
        raise ValueError(f"sort_rows_descending sorts float32 rows, got {x.dtype}")
    N = x.shape[-1]
    if N >= 2**31:
        raise ValueError(f"rows of {N} entries do not fit int32 positions")
    rows = x.reshape(-1, N).contiguous()
    R = rows.shape[0]
    dev = rows.device
    values = torch.empty_like(rows)
    order = torch.empty(R, N, dtype=torch.int32, device=dev) if positions else None
    if R == 0 or N == 0:
        return values.view(x.shape), None if order is None else order.view(x.shape)
    n_blocks = triton.cdiv(N, BLOCK)
    keys = [torch.empty(R, N, dtype=torch.int32, device=dev) for _ in range(2)]  # uint32 bits
    pos = [torch.empty(R, N, dtype=torch.int32, device=dev) for _ in range(2)] if positions else [keys[0]] * 2
    counts = torch.empty(R, _BINS * n_blocks, dtype=torch.int32, device=dev)
    first = torch.empty(R, n_blocks, _BINS, dtype=torch.int32, device=dev)
    src, src_pos = rows, pos[1]
    passes = 32 // _DIGIT_BITS
    for p in range(passes):
        last = p == passes - 1
        dst = values if last else keys[p % 2]
        dst_pos = (order if last else pos[p % 2]) if positions else keys[0]
        shift = p * _DIGIT_BITS
        _counts[(n_blocks, R)](
            src, counts, first, N, n_blocks, shift, FIRST_PASS=p == 0, BLOCK=BLOCK, num_warps=WARPS
        )
        before = torch.cumsum(counts, -1, dtype=torch.int32) - counts  # exclusive, digit major
        _scatter[(n_blocks, R)](
            src, src_pos, dst, dst_pos, before, first, N, n_blocks, shift,
            FIRST_PASS=p == 0, LAST_PASS=last, POSITIONS=positions, BLOCK=BLOCK, PLACE_BITS=_PLACE_BITS,
            num_warps=WARPS,
        )  # fmt: skip
        src, src_pos = dst, dst_pos
    return values.view(x.shape), None if order is None else order.view(x.shape)
