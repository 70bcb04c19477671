"""One Quest decode step in Triton: page scores, an exact top-k of pages, and attention over those pages only.

Why: with torch ops a Quest step at 128k was slower than dense decode on an H200 (BENCHMARKS.md): `topk` over
~8k page scores runs one thread block per row, and gathering the chosen K/V builds a new tensor. Here, three
kernels a step (a step at batch 1 is latency-bound, so every kernel boundary and serial phase counts):

1. `_page_keys` (many programs per batch row and selecting head, each looping over its pages): Quest's bound
   per page from the page summaries and the GQA group's q+ / q- sums, accumulated in float64 and rounded to
   float32 exactly as `quest.page_scores` does, stored as a radix key (its bits, read as uint32, order like
   the scores);
2. `_attend_pages` (split-K flash decoding, many programs per row): with FUSE_SELECT every program first
   finds a bound t for its row's k best keys itself (`_select_into`: the row's keys held in registers, a
   bisection over the key bits below those all its keys share, one count a step, no sort, no single-program
   phase) and writes its own slice of the page list (slots from one prefix count of the keys above and
   equal to t: every page above, and among the pages equal to it the latest, the tie rule of
   `quest.select_tokens`; ascending, then the current page); without it, `_select_pages` (one program per
   row) writes the list first. Each program then reads its pages' keys and values in place (no gather into
   a new tensor) and serves all query heads of a GQA group from one read, keeping a running max and sum;
3. `_merge_splits` combines the slices.

Budgets come from the cache length (a Python int), so nothing waits on the GPU and a step can be captured in a
CUDA graph. Runs under `TRITON_INTERPRET=1` on CPU tensors too (how the tests check it). Launch settings are
module attributes (the values `benchmarks/bench_decode.py --tune` picked on an H200). Earlier selections, measured
there at 128k and replaced (BENCHMARKS.md): one selecting program per row after bucket counts over many
programs (28.9 us), radix searches of 16-bin histograms (33.0 us from global memory, ~20 us from registers,
also when every attention program ran it).
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

# launch settings (module attributes, so a benchmark can try others)
SCORE_PAGES = 32  # pages a scoring program rates per iteration
SCORE_WARPS = 4
SCORE_PROGRAMS_PER_SM = 4  # scoring programs to aim for per multiprocessor (each loops over its pages)
SCORE_STAGES = 3  # software pipelining depth of the scoring loop
SELECT_CHUNK = 8192  # keys a selecting program holds at once (rows of at most this many stay in registers;
# at most 16,384: its prefix counts share one int32)
SELECT_WARPS = 16  # `_select_pages` (FUSE_SELECT off)
FUSE_SELECT = True  # every attention program selects its own pages (False: one selecting program per row)
MIN_PAGES_PER_SPLIT = 4  # pages one attention program reads at least (64 tokens at the seed's 16-key pages)
PROGRAMS_PER_SM = 1  # attention programs to aim for per multiprocessor
ATTEND_WARPS = 8
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@triton.jit
def _page_keys(
    q_ptr,
    sum_ptr,
    keys_ptr,
    n_rank,
    heads_sel,
    per_prog,
    stride_qb,
    stride_qh,
    stride_sb,
    stride_sh,
    stride_sp,
    stride_keys,
    ROWS: tl.constexpr,
    ROWS_P2: tl.constexpr,
    GROUP: tl.constexpr,
    D: tl.constexpr,
    BLOCK_P: tl.constexpr,
    STAGES: tl.constexpr,
):
    """keys[row, p] = radix key of float32(sum_d Q+_d max_pd + Q-_d min_pd) for this program's pages."""
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
    for start in tl.range(first, last, BLOCK_P, num_stages=STAGES):
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


@triton.jit
def _key_chunk(keys_row, start, n, u_first, live_first, offs, ONE: tl.constexpr):
    """Keys start .. start + CHUNK of a row as uint32 and which exist: the ones held in registers when the
    row fits one chunk (ONE), else loaded."""
    if ONE:
        return u_first, live_first
    else:
        idx = start + offs
        live = idx < n
        return tl.load(keys_row + idx, mask=live, other=0).to(tl.uint32, bitcast=True), live


@triton.jit
def _count_from(keys_row, n, floor, u_first, live_first, offs, CHUNK: tl.constexpr, ONE: tl.constexpr):
    """How many of the row's keys are >= floor."""
    count = n * 0
    for start in range(0, n, CHUNK):
        u, live = _key_chunk(keys_row, start, n, u_first, live_first, offs, ONE)
        count += tl.sum((live & (u >= floor)).to(tl.int32), axis=0)
    return count


@triton.jit
def _select_into(keys_row, pages_row, n, k, lo, hi, CHUNK: tl.constexpr, ONE: tl.constexpr):
    """Entries lo .. hi - 1 (within 0 .. k - 1) of the row's page list: the k best-keyed of keys_row[:n] (ties:
    the later pages) in ascending order. Every program that calls it finds the same k-th largest key t.

    A bound t with at least k keys >= t and at most k keys > t, by bisection over the key bits below those
    the row's largest and smallest key share (every key shares them): the largest t with at least k keys
    >= t (the k-th largest key), one count a bit, or the first bound with exactly k keys >= it. One count a
    pass is cheap per key, where a radix histogram (16 bins) cost ~2 us a pass on 8k keys in one program on
    the H200. Then one prefix count gives each chosen page its slot: the keys above t before it plus the
    taken keys equal to t before it (the latest `k - #above` of them)."""
    offs = tl.arange(0, CHUNK)
    zero = n * 0  # (k may arrive as a constant 1)
    live_first = offs < n
    u_first = tl.load(keys_row + offs, mask=live_first, other=0).to(tl.uint32, bitcast=True)
    top = zero.to(tl.uint32)
    for start in range(0, n, CHUNK):
        u, live = _key_chunk(keys_row, start, n, u_first, live_first, offs, ONE)
        top = tl.maximum(top, tl.max(tl.where(live, u, 0), axis=0))
    bottom = top
    for start in range(0, n, CHUNK):
        u, live = _key_chunk(keys_row, start, n, u_first, live_first, offs, ONE)
        bottom = tl.minimum(bottom, tl.min(tl.where(live, u, top), axis=0))
    pos = tl.arange(0, 32).to(tl.uint32)
    width = tl.sum(((top ^ bottom) >> pos != 0).to(tl.int32), axis=0)  # bits below the shared ones
    low = (tl.full([], 1, tl.int64) << width.to(tl.int64)) - 1
    t = (top.to(tl.int64) & (4294967295 - low)).to(tl.uint32)  # the shared bits: n >= k keys are >= t
    one = zero.to(tl.uint32) + 1
    bit = width - 1
    done = zero
    while (bit >= 0) & (done == 0):
        floor = t | (one << bit.to(tl.uint32))
        count = _count_from(keys_row, n, floor, u_first, live_first, offs, CHUNK, ONE)
        t = tl.where(count >= k, floor, t)
        done = (count == k).to(tl.int32)
        bit -= 1
    # now at least k keys are >= t and fewer than k, or exactly k, are > t
    above_all = zero
    ties_all = zero
    for start in range(0, n, CHUNK):
        u, live = _key_chunk(keys_row, start, n, u_first, live_first, offs, ONE)
        above_all += tl.sum(((u > t) & live).to(tl.int32), axis=0)
        ties_all += tl.sum(((u == t) & live).to(tl.int32), axis=0)
    skip = ties_all - (k - above_all)  # keys equal to t left out: the earliest
    above_seen = zero
    ties_seen = zero
    for start in range(0, n, CHUNK):
        u, live = _key_chunk(keys_row, start, n, u_first, live_first, offs, ONE)
        above = (u > t) & live
        tie = (u == t) & live
        packed = above.to(tl.int32) + (tie.to(tl.int32) << 16)  # both prefix counts from one scan
        before = tl.cumsum(packed, axis=0) - packed
        ties_before = (before >> 16) + ties_seen
        slot = (before & 65535) + above_seen + tl.maximum(ties_before - skip, 0)
        chosen = above | (tie & (ties_before >= skip))
        tl.store(pages_row + slot, start + offs, mask=chosen & (slot >= lo) & (slot < hi))
        above_seen += tl.sum(above.to(tl.int32), axis=0)
        ties_seen += tl.sum(tie.to(tl.int32), axis=0)


@triton.jit
def _select_pages(
    keys_ptr, pages_ptr, n_rank, k, stride_keys, stride_pages, CHUNK: tl.constexpr, ONE: tl.constexpr
):
    """pages[row, :k] = the k best-keyed pages of keys[row, :n_rank] (ties: later pages), ascending;
    pages[row, k] = n_rank (the current page). Needs 1 <= k < n_rank."""
    row = tl.program_id(0)
    pages_row = pages_ptr + row * stride_pages
    _select_into(keys_ptr + row * stride_keys, pages_row, n_rank, k, 0, k, CHUNK, ONE)
    tl.store(pages_row + k, n_rank)


@triton.jit
def _attend_pages(
    q_ptr,
    k_ptr,
    v_ptr,
    keys_ptr,
    pages_ptr,
    part_ptr,
    stats_ptr,
    kv_len,
    n_rank,
    n_extra,
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
    stride_keys,
    stride_pages,
    ROWS: tl.constexpr,
    GROUP: tl.constexpr,
    BLOCK_M: tl.constexpr,
    D: tl.constexpr,
    PAGE: tl.constexpr,
    BLOCK_PAGES: tl.constexpr,
    PRECISION: tl.constexpr,
    DOT_F32: tl.constexpr,
    SELECT: tl.constexpr,
    CHUNK: tl.constexpr,
    ONE: tl.constexpr,
):
    """Unnormalised attention of the ROWS query heads of one selecting head over the pages
    pages[row, split * per_split : (split + 1) * per_split], with its running max (log2 units) and sum. With
    SELECT, this program first writes those entries of the page list itself from the row's keys (entry
    n_extra is the current page, n_rank)."""
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
    first = split * per_split
    last = tl.minimum(first + per_split, n_list)
    pages_row = pages_ptr + row * stride_pages
    if SELECT:
        keys_row = keys_ptr + row * stride_keys
        _select_into(keys_row, pages_row, n_rank, n_extra, first, tl.minimum(last, n_extra), CHUNK, ONE)
        if last > n_extra:
            tl.store(pages_row + n_extra, n_rank)
        tl.debug_barrier()  # the entries are read back by other threads of this program
    n = tl.arange(0, BLOCK_PAGES * PAGE)
    slot = n // PAGE
    within = n % PAGE
    k_base = k_ptr + b * stride_kb + kv * stride_kh
    v_base = v_ptr + b * stride_vb + kv * stride_vh
    m_i = tl.full([BLOCK_M], -1.0e30, dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, D], dtype=tl.float32)
    for start in range(first, last, BLOCK_PAGES):
        entry = start + slot
        live = entry < last
        page = tl.load(pages_row + entry, mask=live, other=0, cache_modifier=".cg")
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


def _chunk(n_keys: int) -> tuple[int, bool]:
    """(keys a selecting program reads at once, whether the whole row fits: then it stays in registers)."""
    chunk = min(SELECT_CHUNK, triton.next_power_of_2(n_keys))
    return chunk, n_keys <= chunk


def page_keys(
    query: torch.Tensor, summaries: torch.Tensor, kv_len: int, page_size: int, share_pages: bool
) -> torch.Tensor:
    """Radix keys of the pages before the current one, (B * S, pages - 1) int32 (S = KV heads with shared pages,
    else query heads). Needs at least two pages."""
    batch, q_heads, _, dim = query.shape
    kv_heads = summaries.shape[1]
    heads_sel, rows = (kv_heads, q_heads // kv_heads) if share_pages else (q_heads, 1)
    n_rows = batch * heads_sel
    current = triton.cdiv(kv_len, page_size) - 1
    width = triton.cdiv(current, 16) * 16  # rows 64-byte aligned: vector loads when selecting
    keys = torch.empty(n_rows, width, device=query.device, dtype=torch.int32)[:, :current]
    progs, per = _score_plan(current, n_rows, query.device)
    _page_keys[(n_rows, progs)](
        query, summaries, keys, current, heads_sel, per,
        query.stride(0), query.stride(1), summaries.stride(0), summaries.stride(1), summaries.stride(2),
        keys.stride(0), ROWS=rows, ROWS_P2=triton.next_power_of_2(rows), GROUP=q_heads // kv_heads, D=dim,
        BLOCK_P=SCORE_PAGES, STAGES=SCORE_STAGES, num_warps=SCORE_WARPS,
    )  # fmt: skip
    return keys


def top_pages(keys: torch.Tensor, extra: int) -> torch.Tensor:
    """(rows, extra + 1) int32: the `extra` best-keyed pages of each row (ties: later pages) in ascending order,
    then the current page (index keys.shape[1]). Needs 1 <= extra < keys.shape[1]."""
    rows, current = keys.shape
    pages = torch.empty(rows, extra + 1, device=keys.device, dtype=torch.int32)
    chunk, one = _chunk(current)
    _select_pages[(rows,)](
        keys, pages, current, extra, keys.stride(0), pages.stride(0), CHUNK=chunk, ONE=one,
        num_warps=SELECT_WARPS,
    )  # fmt: skip
    return pages


def _ranked(kv_len: int, extra: int, page_size: int) -> bool:
    """Whether the step ranks pages: some but not all of the pages before the current one are attended."""
    return 0 < extra < triton.cdiv(kv_len, page_size) - 1


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
    return top_pages(page_keys(query, summaries, kv_len, page_size, share_pages), extra)


def page_list(
    query: torch.Tensor, summaries: torch.Tensor, kv_len: int, extra: int, page_size: int, share_pages: bool
) -> torch.Tensor:
    """The page list `quest_decode` reads, made as it makes it (with FUSE_SELECT, by the attention programs,
    here over an all-zero cache): what the checks compare with the torch path's pages."""
    if not (FUSE_SELECT and _ranked(kv_len, extra, page_size)):
        return select_pages(query, summaries, kv_len, extra, page_size, share_pages)
    keys = page_keys(query, summaries, kv_len, page_size, share_pages)
    pages = torch.empty(keys.shape[0], extra + 1, device=query.device, dtype=torch.int32)
    batch, dim = query.shape[0], query.shape[-1]
    blank = query.new_zeros(1, 1, 1, dim).expand(batch, summaries.shape[1], kv_len, dim)
    attend_pages(query, blank, blank, pages, page_size, share_pages, 1.0, keys=keys)
    return pages


def attend_pages(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    pages: torch.Tensor,
    page_size: int,
    share_pages: bool,
    scaling: float,
    keys: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attention of each query head over the tokens of its selecting head's pages (B, Hq, 1, D); tokens at or
    past the cache length (the current page's tail) are masked. With `keys` (from `page_keys`), `pages` is an
    empty (rows, extra + 1) buffer that the attention programs fill with the page list themselves."""
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
    n_rank = keys.shape[1] if keys is not None else 0
    chunk, one = _chunk(max(n_rank, 1))
    _attend_pages[(n_rows, splits)](
        query, key, value, pages if keys is None else keys, pages, part, stats, kv_len, n_rank, n_list - 1,
        n_list, per, heads_sel, splits, scaling * 1.4426950408889634,
        query.stride(0), query.stride(1), key.stride(0), key.stride(1), key.stride(2),
        value.stride(0), value.stride(1), value.stride(2), 0 if keys is None else keys.stride(0), pages.stride(0),
        ROWS=rows, GROUP=group, BLOCK_M=max(16, triton.next_power_of_2(rows)), D=dim, PAGE=page_size,
        BLOCK_PAGES=block_pages, PRECISION=precision, DOT_F32=dot_f32, SELECT=keys is not None, CHUNK=chunk,
        ONE=one, num_warps=ATTEND_WARPS, num_stages=2,
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
    kv_len = key.shape[2]
    if FUSE_SELECT and _ranked(kv_len, extra, page_size):
        keys = page_keys(query, summaries, kv_len, page_size, share_pages)
        pages = torch.empty(keys.shape[0], extra + 1, device=query.device, dtype=torch.int32)
        return attend_pages(query, key, value, pages, page_size, share_pages, scaling, keys=keys)
    pages = select_pages(query, summaries, kv_len, extra, page_size, share_pages)
    return attend_pages(query, key, value, pages, page_size, share_pages, scaling)
