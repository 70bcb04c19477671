"""One Quest decode step in Triton: page scores, an exact top-k of pages, and attention over those pages only.

Why: with torch ops a Quest step at 128k was slower than dense decode on an H200 (BENCHMARKS.md): `topk` over
~8k page scores runs one thread block per row, and gathering the chosen K/V builds a new tensor. Here:

1. `_page_keys` (many programs per batch row and selecting head, each looping over its pages): Quest's bound
   per page from the page summaries and the GQA group's q+ / q- sums, accumulated in float64 and rounded to
   float32 exactly as `quest.page_scores` does, stored as a radix key (its bits, read as uint32, order like
   the scores); on long rows also each row's largest and smallest key (atomic max);
2. the k-th largest key t of a row. Long rows (more keys than one selection chunk, e.g. 8,191 pages at 128k):
   `_count_buckets` (many programs per row) counts the keys into 2,048 buckets spanning the row's key range
   (the bits below those all its keys share, so buckets order like keys), and `_select_pages` (one program per
   row) finds t's bucket from the counts and ranks the few keys in it against each other; a bucket of more
   than CANDIDATES keys, and every short row, takes the radix search of 16-bin histograms (4 bits a pass over
   all keys, no sort) instead. On the H200 the buckets cut this step at 128k (28.9 vs 33.0 us, batch 1) and
   cost more at 32k (19.4 vs 14.3 us), hence the split. `_select_pages` then writes every page above t and,
   among pages equal to t, the latest ones (the tie rule of `quest.select_tokens`), in ascending order, then
   the current page;
3. `_attend_pages` (split-K flash decoding): each program walks one slice of that page list, reads those pages'
   keys and values in place (no gather into a new tensor) and serves all query heads of a GQA group from one
   read, keeping a running max and sum; `_merge_splits` combines the slices.

Budgets come from the cache length (a Python int), so nothing waits on the GPU and a step can be captured in a
CUDA graph. Runs under `TRITON_INTERPRET=1` on CPU tensors too (how the tests check it). Launch settings are
module attributes (the values `benchmarks/bench_decode.py --tune` picked on an H200); fusing the selection
into the scoring kernel and the merge into the attention kernel (last program of a row, by an atomic
counter) was measured there and was not faster.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

# launch settings (module attributes, so a benchmark can try others)
SCORE_PAGES = 64  # pages a scoring program rates per iteration
SCORE_WARPS = 8
SCORE_PROGRAMS_PER_SM = 2  # scoring programs to aim for per multiprocessor (each loops over its pages)
SELECT_CHUNK = 4096  # keys the selection reads per iteration
SELECT_WARPS = 16
SELECT_BUCKETS = True  # rows of more than SELECT_CHUNK keys: a many-program bucket count first (False: never)
BUCKET_BITS = 11  # 2**BUCKET_BITS buckets spanning each row's key range
BUCKET_KEYS = 512  # keys one counting program reads
CANDIDATES = 128  # keys in the k-th key's bucket the selection ranks directly; more: the radix search
MIN_PAGES_PER_SPLIT = 4  # pages one attention program reads at least (64 tokens at the seed's 16-key pages)
PROGRAMS_PER_SM = 2  # attention programs to aim for per multiprocessor
ATTEND_WARPS = 4
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@triton.jit
def _page_keys(
    q_ptr,
    sum_ptr,
    keys_ptr,
    stats_ptr,
    n_rank,
    heads_sel,
    per_prog,
    stride_qb,
    stride_qh,
    stride_sb,
    stride_sh,
    stride_sp,
    stride_keys,
    stride_stats,
    ROWS: tl.constexpr,
    ROWS_P2: tl.constexpr,
    GROUP: tl.constexpr,
    D: tl.constexpr,
    BLOCK_P: tl.constexpr,
    NB: tl.constexpr,
    EXTREMES: tl.constexpr,
):
    """keys[row, p] = radix key of float32(sum_d Q+_d max_pd + Q-_d min_pd) for this program's pages; with
    EXTREMES, the row's largest key and largest complemented key (its smallest) go to stats[row, NB : NB + 2]
    by atomic max."""
    row = tl.program_id(0)
    prog = tl.program_id(1)
    b = (row // heads_sel).to(tl.int64)
    head0 = (row % heads_sel) * ROWS
    kv = head0 // GROUP
    r = tl.arange(0, ROWS_P2)
    d = tl.arange(0, D)
    q_rows = q_ptr + b * stride_qb + (head0 + r)[:, None] * stride_qh + d[None, :]
    q = tl.load(q_rows, mask=(r < ROWS)[:, None], other=0.0).to(tl.float64)
    q_pos = tl.sum(tl.maximum(q, 0.0), axis=0)
    q_neg = tl.sum(tl.minimum(q, 0.0), axis=0)
    sum_row = sum_ptr + b * stride_sb + kv * stride_sh
    first = prog * per_prog
    last = tl.minimum(first + per_prog, n_rank)
    top = tl.zeros([BLOCK_P], dtype=tl.uint32)
    bottom = tl.zeros([BLOCK_P], dtype=tl.uint32)
    for start in range(first, last, BLOCK_P):
        p = start + tl.arange(0, BLOCK_P)
        live = p < last
        base = sum_row + p[:, None] * stride_sp + d[None, :]
        hi = tl.load(base, mask=live[:, None], other=0.0).to(tl.float64)
        lo = tl.load(base + D, mask=live[:, None], other=0.0).to(tl.float64)
        score = tl.sum(hi * q_pos[None, :] + lo * q_neg[None, :], axis=1).to(tl.float32)
        bits = score.to(tl.int32, bitcast=True)
        bits = tl.where(bits == -2147483648, 0, bits)  # -0.0 ranks as +0.0
        key = bits ^ tl.where(bits < 0, -1, -2147483648)  # negatives: flip all bits; others: the sign bit
        tl.store(keys_ptr + row * stride_keys + p, key, mask=live)
        if EXTREMES:
            u = key.to(tl.uint32, bitcast=True)
            top = tl.maximum(top, tl.where(live, u, 0))
            bottom = tl.maximum(bottom, tl.where(live, ~u, 0))
    if EXTREMES:
        extremes = stats_ptr.to(tl.pointer_type(tl.uint32)) + row * stride_stats + NB
        tl.atomic_max(extremes, tl.max(top, axis=0))
        tl.atomic_max(extremes + 1, tl.max(bottom, axis=0))


@triton.jit
def _bucket_shift(stats, NB: tl.constexpr, BITS: tl.constexpr):
    """Right shift that leaves a row's keys BITS bits that differ between them: every key lies between the row's
    smallest and largest, so all share the bits above the highest one where those two differ."""
    top = tl.load(stats + NB).to(tl.uint32, bitcast=True)
    bottom = ~tl.load(stats + NB + 1).to(tl.uint32, bitcast=True)
    pos = tl.arange(0, 32).to(tl.uint32)
    width = tl.sum(((top ^ bottom) >> pos != 0).to(tl.int32), axis=0)  # bit length of the difference
    return tl.maximum(width - BITS, 0).to(tl.uint32)


@triton.jit
def _count_buckets(
    keys_ptr, stats_ptr, n_rank, stride_keys, stride_stats, NB: tl.constexpr, BITS: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    """stats[row, bucket] += how many of this program's keys fall in each bucket (the keys' BITS bits below
    the ones a row's keys share: the buckets order like the keys)."""
    row = tl.program_id(0)
    idx = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    live = idx < n_rank
    stats = stats_ptr + row * stride_stats
    shift = _bucket_shift(stats, NB, BITS)
    u = tl.load(keys_ptr + row * stride_keys + idx, mask=live, other=0).to(tl.uint32, bitcast=True)
    bucket = ((u >> shift) & (NB - 1)).to(tl.int32)
    tl.atomic_add(stats + bucket, 1, mask=live)


@triton.jit
def _select_pages(
    keys_ptr,
    stats_ptr,
    cand_ptr,
    pages_ptr,
    n_rank,
    k,
    stride_keys,
    stride_stats,
    stride_pages,
    CHUNK: tl.constexpr,
    BUCKETS: tl.constexpr,
    NB: tl.constexpr,
    BITS: tl.constexpr,
    CAND: tl.constexpr,
):
    """pages[row, :k] = the k best-keyed pages of keys[row, :n_rank] (ties: later pages), ascending;
    pages[row, k] = n_rank (the current page). Needs 1 <= k < n_rank.

    The k-th largest key t: with BUCKETS, the bucket counts (`_count_buckets`) name the bucket that holds it;
    when at most CAND keys fall in it, they are gathered and ranked against each other at once. Otherwise a
    radix search over all keys, 4 bits a pass. Then every key above t and the latest keys equal to t."""
    row = tl.program_id(0)
    keys_row = keys_ptr + row * stride_keys
    pages_row = pages_ptr + row * stride_pages
    offs = tl.arange(0, CHUNK)
    zero = n_rank * 0  # (k may arrive as a constant 1)
    t = zero.to(tl.uint32)
    skip = zero  # keys equal to t left out: the earliest
    searching = n_rank > 0
    if BUCKETS:
        stats = stats_ptr + row * stride_stats
        shift = _bucket_shift(stats, NB, BITS)
        bins = tl.arange(0, NB)
        hist = tl.load(stats + bins)
        tl.store(stats + bins, 0)  # counts back to zero: the buffers can count again (benchmarks replay this)
        reach = tl.cumsum(hist, axis=0, reverse=True)  # keys in this bucket or a higher one
        best = tl.sum((reach >= k).to(tl.int32), axis=0) - 1
        need = k - tl.sum(tl.where(bins > best, hist, 0), axis=0)  # keys to take from bucket `best`
        n_cand = tl.sum(tl.where(bins == best, hist, 0), axis=0)
        if n_cand <= CAND:
            cand_row = cand_ptr + row * CAND
            found = zero
            for start in range(0, n_rank, CHUNK):
                idx = start + offs
                live = idx < n_rank
                u = tl.load(keys_row + idx, mask=live, other=0).to(tl.uint32, bitcast=True)
                inside = live & (((u >> shift) & (NB - 1)).to(tl.int32) == best)
                slot = tl.cumsum(inside.to(tl.int32), axis=0) - 1 + found
                tl.store(cand_row + slot, idx, mask=inside & (slot < CAND))
                found += tl.sum(inside.to(tl.int32), axis=0)
            tl.debug_barrier()  # the gathered indices are read back by other threads of this block
            c = tl.arange(0, CAND)
            c_live = c < n_cand
            c_idx = tl.load(cand_row + c, mask=c_live, other=0, cache_modifier=".cg")
            cu = tl.load(keys_row + c_idx, mask=c_live, other=0).to(tl.uint32, bitcast=True)
            above = tl.sum(((cu[None, :] > cu[:, None]) & c_live[None, :]).to(tl.int32), axis=1)
            equal = tl.sum(((cu[None, :] == cu[:, None]) & c_live[None, :]).to(tl.int32), axis=1)
            # t: the largest candidate key with at least `need` candidates at or above it
            t = tl.max(tl.where(c_live & (above + equal >= need), cu, 0), axis=0)
            at_t = c_live & (cu == t)
            take = need - tl.max(tl.where(at_t, above, 0), axis=0)  # keys equal to t to take
            skip = tl.max(tl.where(at_t, equal, 0), axis=0) - take
            searching = n_rank < 0
    if searching:  # radix search, 4 bits a pass: the k-th largest key t, and how many keys equal to t to take
        bins16 = tl.arange(0, 16)
        need16 = zero + k
        ties = zero
        t16 = zero.to(tl.uint32)
        for step in tl.static_range(8):
            hist16 = tl.zeros([16], dtype=tl.int32)
            for start in range(0, n_rank, CHUNK):
                idx = start + offs
                live = idx < n_rank
                u = tl.load(keys_row + idx, mask=live, other=0).to(tl.uint32, bitcast=True)
                if step > 0:  # only keys that share t's digits so far
                    live = live & ((u >> (32 - 4 * step)) == (t16 >> (32 - 4 * step)))
                hist16 += tl.histogram(((u >> (28 - 4 * step)) & 15).to(tl.int32), 16, mask=live)
            reach16 = tl.cumsum(hist16, axis=0, reverse=True)  # keys with this digit or a larger one
            digit = tl.sum((reach16 >= need16).to(tl.int32), axis=0) - 1
            need16 -= tl.sum(tl.where(bins16 > digit, hist16, 0), axis=0)
            ties = tl.sum(tl.where(bins16 == digit, hist16, 0), axis=0)
            t16 = t16 | (digit.to(tl.uint32) << (28 - 4 * step))
        t = t16
        skip = ties - need16
    seen = zero
    written = zero
    for start in range(0, n_rank, CHUNK):
        idx = start + offs
        live = idx < n_rank
        u = tl.load(keys_row + idx, mask=live, other=0).to(tl.uint32, bitcast=True)
        tie = (u == t) & live
        tie_rank = tl.cumsum(tie.to(tl.int32), axis=0) + seen
        chosen = ((u > t) & live) | (tie & (tie_rank > skip))
        slot = tl.cumsum(chosen.to(tl.int32), axis=0) - 1 + written
        tl.store(pages_row + slot, idx, mask=chosen)
        seen += tl.sum(tie.to(tl.int32), axis=0)
        written += tl.sum(chosen.to(tl.int32), axis=0)
    tl.store(pages_row + k, n_rank)


@triton.jit
def _attend_pages(
    q_ptr,
    k_ptr,
    v_ptr,
    pages_ptr,
    part_ptr,
    stats_ptr,
    kv_len,
    n_list,
    per_split,
    heads_sel,
    n_splits,
    scale_log2,
    stride_qb,
    stride_qh,
    stride_kb,
    stride_kh,
    stride_kl,
    stride_vb,
    stride_vh,
    stride_vl,
    stride_pages,
    ROWS: tl.constexpr,
    GROUP: tl.constexpr,
    BLOCK_M: tl.constexpr,
    D: tl.constexpr,
    PAGE: tl.constexpr,
    BLOCK_PAGES: tl.constexpr,
    PRECISION: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    """Unnormalised attention of the ROWS query heads of one selecting head over the pages
    pages[row, split * per_split : (split + 1) * per_split], with its running max (log2 units) and sum."""
    row = tl.program_id(0)
    split = tl.program_id(1)
    b = (row // heads_sel).to(tl.int64)
    head0 = (row % heads_sel) * ROWS
    kv = head0 // GROUP
    m = tl.arange(0, BLOCK_M)
    d = tl.arange(0, D)
    q_rows = q_ptr + b * stride_qb + (head0 + m)[:, None] * stride_qh + d[None, :]
    q = tl.load(q_rows, mask=(m < ROWS)[:, None], other=0.0)
    if DOT_F32:  # the interpreter's dot mishandles 16-bit floats
        q = q.to(tl.float32)
    n = tl.arange(0, BLOCK_PAGES * PAGE)
    slot = n // PAGE
    within = n % PAGE
    k_base = k_ptr + b * stride_kb + kv * stride_kh
    v_base = v_ptr + b * stride_vb + kv * stride_vh
    m_i = tl.full([BLOCK_M], -1.0e30, dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, D], dtype=tl.float32)
    first = split * per_split
    last = tl.minimum(first + per_split, n_list)
    for start in range(first, last, BLOCK_PAGES):
        entry = start + slot
        live = entry < last
        page = tl.load(pages_ptr + row * stride_pages + entry, mask=live, other=0)
        token = page * PAGE + within
        live = live & (token < kv_len)
        keys = tl.load(k_base + token[:, None] * stride_kl + d[None, :], mask=live[:, None], other=0.0)
        if DOT_F32:
            keys = keys.to(tl.float32)
        s = tl.dot(q, tl.trans(keys), input_precision=PRECISION) * scale_log2
        s = tl.where(live[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        values = tl.load(v_base + token[:, None] * stride_vl + d[None, :], mask=live[:, None], other=0.0)
        if DOT_F32:
            values = values.to(tl.float32)
        acc = acc * alpha[:, None] + tl.dot(p.to(values.dtype), values, input_precision=PRECISION)
        m_i = m_new
    out = (row * n_splits + split) * ROWS + m
    tl.store(part_ptr + out[:, None] * D + d[None, :], acc, mask=(m < ROWS)[:, None])
    tl.store(stats_ptr + out * 2, m_i, mask=m < ROWS)
    tl.store(stats_ptr + out * 2 + 1, l_i, mask=m < ROWS)


@triton.jit
def _merge_splits(
    part_ptr,
    stats_ptr,
    out_ptr,
    heads_sel,
    n_splits,
    stride_ob,
    stride_oh,
    ROWS: tl.constexpr,
    D: tl.constexpr,
    SPLITS: tl.constexpr,
):
    """out[b, head] = sum_s 2^(m_s - M) acc_s / sum_s 2^(m_s - M) l_s over the splits of one query head."""
    row = tl.program_id(0)
    r = tl.program_id(1)
    sp = tl.arange(0, SPLITS)
    d = tl.arange(0, D)
    live = sp < n_splits
    idx = (row * n_splits + sp) * ROWS + r
    m = tl.load(stats_ptr + idx * 2, mask=live, other=-1.0e30)
    l = tl.load(stats_ptr + idx * 2 + 1, mask=live, other=0.0)  # noqa: E741
    w = tl.exp2(m - tl.max(m, axis=0))
    acc = tl.load(part_ptr + idx[:, None] * D + d[None, :], mask=live[:, None], other=0.0)
    o = tl.sum(acc * w[:, None], axis=0) / tl.sum(w * l, axis=0)
    b = (row // heads_sel).to(tl.int64)
    head = (row % heads_sel) * ROWS + r
    tl.store(out_ptr + b * stride_ob + head * stride_oh + d, o.to(out_ptr.dtype.element_ty))


def supported(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, page_size: int) -> bool:
    """Whether these kernels handle the shapes: power-of-two pages and head dim (16-256), float16/bfloat16/
    float32, GQA with whole groups, one query token, contiguous last dims."""
    dim = query.shape[-1]
    return (
        query.dim() == 4
        and query.shape[2] == 1
        and query.shape[1] % key.shape[1] == 0
        and query.dtype in DTYPES
        and key.dtype == query.dtype == value.dtype
        and dim in (16, 32, 64, 128, 256)
        and page_size & (page_size - 1) == 0
        and query.stride(-1) == key.stride(-1) == value.stride(-1) == 1
    )


@functools.cache
def _multiprocessors(device: torch.device) -> int:
    """The multiprocessor count (a few on CPU, where the interpreter runs the programs)."""
    if device.type != "cuda":
        return 2
    return torch.cuda.get_device_properties(device).multi_processor_count


def _split_plan(n_list: int, rows: int, device: torch.device, block_pages: int) -> tuple[int, int]:
    """(splits per selecting head, pages per split): enough programs to fill the GPU, each reading at least a
    few pages, a whole number of BLOCK_PAGES iterations."""
    per = max(MIN_PAGES_PER_SPLIT, triton.cdiv(n_list * rows, PROGRAMS_PER_SM * _multiprocessors(device)))
    per = triton.cdiv(per, block_pages) * block_pages
    return triton.cdiv(n_list, per), per


def _score_plan(current: int, rows: int, device: torch.device) -> tuple[int, int]:
    """(scoring programs per row, pages each): about SCORE_PROGRAMS_PER_SM programs per multiprocessor."""
    wanted = max(1, triton.cdiv(SCORE_PROGRAMS_PER_SM * _multiprocessors(device), rows))
    per = triton.cdiv(triton.cdiv(current, wanted), SCORE_PAGES) * SCORE_PAGES
    return triton.cdiv(current, per), per


def bucketed(n_keys: int) -> bool:
    """Whether the selection counts buckets first: on the H200 it paid at 8,191 keys a row (128k tokens) and
    cost more than it saved at 2,047 (32k), where the radix search reads each row in one chunk a pass."""
    return SELECT_BUCKETS and n_keys > SELECT_CHUNK


def page_keys(
    query: torch.Tensor, summaries: torch.Tensor, kv_len: int, page_size: int, share_pages: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Radix keys of the pages before the current one, (B * S, pages - 1) int32 (S = KV heads with shared pages,
    else query heads), and, where the selection counts buckets (`bucketed`), per row the zeroed bucket counts
    then the keys' extremes (`top_pages` reads them), else None. Needs at least two pages."""
    batch, q_heads, _, dim = query.shape
    kv_heads = summaries.shape[1]
    heads_sel, rows = (kv_heads, q_heads // kv_heads) if share_pages else (q_heads, 1)
    n_rows = batch * heads_sel
    current = triton.cdiv(kv_len, page_size) - 1
    width = triton.cdiv(current, 16) * 16  # rows 64-byte aligned: vector loads when selecting
    keys = torch.empty(n_rows, width, device=query.device, dtype=torch.int32)[:, :current]
    n_buckets = 1 << BUCKET_BITS
    stats = None
    if bucketed(current):
        stats = torch.zeros(n_rows, n_buckets + 16, device=query.device, dtype=torch.int32)
    progs, per = _score_plan(current, n_rows, query.device)
    _page_keys[(n_rows, progs)](
        query, summaries, keys, keys if stats is None else stats, current, heads_sel, per,
        query.stride(0), query.stride(1), summaries.stride(0), summaries.stride(1), summaries.stride(2),
        keys.stride(0), 0 if stats is None else stats.stride(0),
        ROWS=rows, ROWS_P2=triton.next_power_of_2(rows), GROUP=q_heads // kv_heads, D=dim, BLOCK_P=SCORE_PAGES,
        NB=n_buckets, EXTREMES=stats is not None, num_warps=SCORE_WARPS,
    )  # fmt: skip
    return keys, stats


def top_pages(keys: torch.Tensor, stats: torch.Tensor | None, extra: int) -> torch.Tensor:
    """(rows, extra + 1) int32: the `extra` best-keyed pages of each row (ties: later pages) in ascending order,
    then the current page (index keys.shape[1]). `stats` as `page_keys` returns it (its counts are zero again
    afterwards); None: the radix search alone. Needs 1 <= extra < keys.shape[1]."""
    rows, current = keys.shape
    pages = torch.empty(rows, extra + 1, device=keys.device, dtype=torch.int32)
    n_buckets = 1 << BUCKET_BITS
    stats_arg, candidates, stride_stats = keys, keys, 0  # (unread without buckets)
    if stats is not None:
        n_buckets = stats.shape[1] - 16
        stats_arg, stride_stats = stats, stats.stride(0)
        candidates = torch.empty(rows, CANDIDATES, device=keys.device, dtype=torch.int32)
        _count_buckets[(rows, triton.cdiv(current, BUCKET_KEYS))](
            keys, stats, current, keys.stride(0), stats.stride(0), NB=n_buckets, BITS=n_buckets.bit_length() - 1,
            BLOCK=BUCKET_KEYS, num_warps=4,
        )  # fmt: skip
    _select_pages[(rows,)](
        keys, stats_arg, candidates, pages, current, extra, keys.stride(0), stride_stats, pages.stride(0),
        CHUNK=min(SELECT_CHUNK, triton.next_power_of_2(current)), BUCKETS=stats is not None, NB=n_buckets,
        BITS=n_buckets.bit_length() - 1, CAND=CANDIDATES, num_warps=SELECT_WARPS,
    )  # fmt: skip
    return pages


def select_pages(
    query: torch.Tensor, summaries: torch.Tensor, kv_len: int, extra: int, page_size: int, share_pages: bool
) -> torch.Tensor:
    """Page list per (batch row, selecting head) as (B * S, extra + 1) int32: the `extra` best-ranked pages
    before the current one in ascending order, then the current page. S = KV heads (shared pages) or query
    heads. `extra` must lie in 0 .. (number of pages - 1)."""
    batch, q_heads = query.shape[:2]
    rows = batch * (summaries.shape[1] if share_pages else q_heads)
    current = triton.cdiv(kv_len, page_size) - 1
    if extra >= current:  # every page: nothing to rank
        return torch.arange(current + 1, device=query.device, dtype=torch.int32).expand(rows, -1)
    if extra == 0:
        return torch.full((rows, 1), current, device=query.device, dtype=torch.int32)
    return top_pages(*page_keys(query, summaries, kv_len, page_size, share_pages), extra)


def attend_pages(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    pages: torch.Tensor,
    page_size: int,
    share_pages: bool,
    scaling: float,
) -> torch.Tensor:
    """Attention of each query head over the tokens of its selecting head's pages (B, Hq, 1, D); tokens at or
    past the cache length (the current page's tail) are masked."""
    batch, q_heads, _, dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    group = q_heads // kv_heads
    heads_sel, rows = (kv_heads, group) if share_pages else (q_heads, 1)
    n_rows = batch * heads_sel
    block_pages = max(1, 64 // page_size)
    n_list = pages.shape[1]
    splits, per = _split_plan(n_list, n_rows, query.device, block_pages)
    n_part = n_rows * splits * rows
    buffer = torch.empty(n_part * (dim + 2), device=query.device, dtype=torch.float32)
    part, stats = buffer[: n_part * dim].view(n_part, dim), buffer[n_part * dim :].view(n_part, 2)
    dot_f32 = query.device.type != "cuda"  # CPU tensors: the triton interpreter
    precision = "ieee" if dot_f32 or query.dtype == torch.float32 else "tf32"
    _attend_pages[(n_rows, splits)](
        query, key, value, pages, part, stats, kv_len, n_list, per, heads_sel, splits, scaling * 1.4426950408889634,
        query.stride(0), query.stride(1), key.stride(0), key.stride(1), key.stride(2),
        value.stride(0), value.stride(1), value.stride(2), pages.stride(0),
        ROWS=rows, GROUP=group, BLOCK_M=max(16, triton.next_power_of_2(rows)), D=dim, PAGE=page_size,
        BLOCK_PAGES=block_pages, PRECISION=precision, DOT_F32=dot_f32, num_warps=ATTEND_WARPS, num_stages=2,
    )  # fmt: skip
    out = torch.empty(batch, q_heads, 1, dim, device=query.device, dtype=query.dtype)
    _merge_splits[(n_rows, rows)](
        part, stats, out, heads_sel, splits, out.stride(0), out.stride(1),
        ROWS=rows, D=dim, SPLITS=triton.next_power_of_2(splits), num_warps=8,
    )  # fmt: skip
    return out


def quest_decode(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    summaries: torch.Tensor,
    *,
    extra: int,
    page_size: int,
    share_pages: bool,
    scaling: float,
) -> torch.Tensor:
    """One Quest decode step (B, Hq, 1, D): the `extra` best pages before the current one plus the current page.
    `summaries` (B, Hkv, >= pages - 1, 2D) as `quest.page_summaries` makes them."""
    pages = select_pages(query, summaries, key.shape[2], extra, page_size, share_pages)
    return attend_pages(query, key, value, pages, page_size, share_pages, scaling)
