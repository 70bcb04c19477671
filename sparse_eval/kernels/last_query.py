"""Vertical and slash sums of the last queries' causal attention in two Triton passes.

Why: the torch path (`sparse_eval.methods.estimation`) writes bf16 scores, runs a softmax pass that writes
bf16 probabilities, then reads those twice (column sums, then diagonal sums): ~5 passes over a (Hq, n, L)
tensor, ~8 ms at 128k tokens for n = 512 on an H200. Here (one KV head's query group at a time):

  `_scores`: the (groups * n) query rows (scale folded into q, as torch does) against blocks of keys;
      scores rounded to the inputs' dtype as torch's, then per (row, key block) the block's max m and
      P = 2^(s - m) in bf16 (0 for keys after the query's position) and its float32 sum: one write of P.
      The statistics are laid out key block major (block, row), so a tile's 64 rows store them in one
      coalesced write: row major, each was a separate 4-byte store, and the kernel took 13-15 % longer
      (0.305 -> 0.261 ms per KV group at 128k, n = 256, on an H200; same bits).
  `_row_scale`: per row, the log-sum-exp from those block statistics and the factor 2^(m - lse) per block,
      written row major for `_sums`.
  `_sums`: one program per (query head, key block kb): it walks the n rows, p = P * factor, and sums the
      aligned block kb over rows (vertical) and, for the offset block that pairs with kb, the skewed entries
      p[i, pos_i - o] (slash). That offset block's keys end at kb's, so the skewed rows are mostly the ones
      this program's neighbours just read (L2). Each program owns its outputs: no atomics, deterministic.
      No exp here: P already holds the exponentials.

Rounding: each probability is rounded once to bf16 (P), as torch rounds its softmax output; the sums run in
float32, as the torch path's do. Runs under `TRITON_INTERPRET=1` on CPU tensors too.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

DTYPES = (torch.bfloat16, torch.float16)
HEAD_DIMS = (16, 32, 64, 128)
# Tuned on an H200 at 128k tokens, n = 512 and 256 (benchmarks/bench_estimation.py). SUM_KEYS must divide BLOCK_N.
# A 31-config sweep: 64-row score tiles and 8-row `_sums` steps won (~4% each); no other tile shape, warp or
# stage count or STRETCH was faster; launching the row blocks of a key stretch together (below) made no
# measurable difference at 128-row tiles but is what ran in every benchmark since.
BLOCK_M, BLOCK_N, STRETCH = 64, 64, 16  # score tile rows x keys; key blocks per `_scores` program
SCORE_WARPS, SCORE_STAGES = 4, 3
SUM_ROWS, SUM_KEYS, SUM_WARPS = 8, 64, 2  # rows per step, keys (and offsets) per `_sums` program
TUNABLES = (
    "BLOCK_M",
    "BLOCK_N",
    "STRETCH",
    "SCORE_WARPS",
    "SCORE_STAGES",
    "SUM_ROWS",
    "SUM_KEYS",
    "SUM_WARPS",
)
LOG2E = tl.constexpr(1.4426950408889634)
ROW_SCALE_BLOCK = 256  # key blocks a `_row_scale` program reads at once (rows longer than this loop)
ROW_SCALE_ROWS = 16  # rows per `_row_scale` program
_CHUNK_ELEMENTS = 1 << 29  # probabilities kept at once: 1 GiB in bf16, as the torch path's bound


@triton.jit
def _round_bf16(x):
    """float32 `x` rounded to the nearest bf16 (ties to even), still float32: exact under the interpreter's
    truncating cast. Finite inputs only (scores, probabilities)."""
    bits = x.to(tl.uint32, bitcast=True)
    bits = (bits + (0x7FFF + ((bits >> 16) & 1))) & 0xFFFF0000
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def _scores(
    Q, K, P, M, SUMEXP,
    ROWS, N, L, NKB,
    stride_kh, stride_kl,
    D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, STRETCH: tl.constexpr,
    INTERPRETED: tl.constexpr,
):  # fmt: skip
    """Q (H, ROWS, D) contiguous, scaled; K rows at K + h * stride_kh + key * stride_kl; P (H, ROWS, L) bf16;
    M, SUMEXP (H, NKB, ROWS) float32, key block major. Per (row, key block): m = the block's row max of the
    scores in log2 units, P = 2^(s - m) rounded to bf16 (0 for keys after the query's position), SUMEXP =
    their float32 sum."""
    h = tl.program_id(2)
    rb = tl.program_id(0)  # row blocks fastest: the programs sharing a stretch of keys run together
    split = tl.program_id(1)
    rows = rb * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < ROWS
    pos = L - N + rows % N  # the query's position in the sequence
    d = tl.arange(0, D)
    head_rows = h * ROWS + rows.to(tl.int64)
    q = tl.load(Q + head_rows[:, None] * D + d[None, :], mask=row_ok[:, None], other=0.0)
    k_base = K + h.to(tl.int64) * stride_kh
    for step in range(STRETCH):
        blk = split * STRETCH + step
        keys = blk * BLOCK_N + tl.arange(0, BLOCK_N)
        key_ok = keys < L
        k = tl.load(
            k_base + keys.to(tl.int64)[:, None] * stride_kl + d[None, :], mask=key_ok[:, None], other=0.0
        )
        if INTERPRETED:  # triton 3.6's interpreter multiplies bf16 as raw uint16 bits and truncates to bf16
            s = tl.dot(q.to(tl.float32), tl.trans(k.to(tl.float32)), input_precision="ieee")
            s = _round_bf16(s) if Q.dtype.element_ty == tl.bfloat16 else s.to(Q.dtype.element_ty)
        else:
            s = tl.dot(q, tl.trans(k)).to(Q.dtype.element_ty)
        s = s.to(tl.float32)  # rounded as torch's scores
        if (blk + 1) * BLOCK_N > L - N:  # only the last n keys can be future ones, or past the end
            s = tl.where((keys[None, :] > pos[:, None]) | (key_ok[None, :] == 0), float("-inf"), s)
        m = tl.max(s, 1) * LOG2E  # in log2 units (the max commutes with the positive factor)
        e = tl.exp2(s * LOG2E - tl.where(m == float("-inf"), 0.0, m)[:, None])  # future keys only: 0
        if INTERPRETED:
            e = _round_bf16(e)
        tl.store(
            P + head_rows[:, None] * L + keys[None, :],
            e.to(tl.bfloat16),
            mask=row_ok[:, None] & key_ok[None, :],
        )
        stat = (h * NKB + blk).to(tl.int64) * ROWS + rows  # a tile's rows are contiguous: one coalesced store
        tl.store(M + stat, m, mask=row_ok & (blk < NKB))
        tl.store(SUMEXP + stat, tl.sum(e, 1), mask=row_ok & (blk < NKB))


@triton.jit
def _row_scale(M, SUMEXP, SCALE, ROWS, NKB, BLOCK: tl.constexpr, ROW_BLOCK: tl.constexpr):
    """Program (row block, h) over M, SUMEXP (H, NKB, ROWS), key block major as `_scores` writes them: each
    row's log-sum-exp (log2 units) from its per-block maxima m and sums of 2^(s - m), online over BLOCK key
    blocks at a time, then SCALE (H, ROWS, NKB) = 2^(m - lse), row major as `_sums` reads it (a `_sums`
    that read the block-major statistics and took the factor itself took 28 % longer on an H200)."""
    rows = tl.program_id(0) * ROW_BLOCK + tl.arange(0, ROW_BLOCK)
    row_ok = rows < ROWS
    head = tl.program_id(1).to(tl.int64) * NKB * ROWS
    top = tl.full([ROW_BLOCK], float("-inf"), tl.float32)
    total = tl.zeros([ROW_BLOCK], tl.float32)
    for b0 in range(0, NKB, BLOCK):  # block 0 (key 0, causal for every row) is finite: top is after this
        blk = b0 + tl.arange(0, BLOCK)
        at = head + blk.to(tl.int64)[:, None] * ROWS + rows[None, :]
        ok = (blk < NKB)[:, None] & row_ok[None, :]
        m = tl.load(M + at, mask=ok, other=float("-inf"))
        e = tl.load(SUMEXP + at, mask=ok, other=0.0)
        new_top = tl.maximum(top, tl.max(m, 0))
        safe = tl.where(new_top == float("-inf"), 0.0, new_top)
        total = total * tl.exp2(top - safe) + tl.sum(e * tl.exp2(m - safe[None, :]), 0)
        top = new_top
    # total >= 1 on real rows (the block holding the row max adds 2^0); rows past the end get a finite 0
    lse = tl.where(row_ok, top, 0.0) + tl.log2(tl.maximum(total, 1.0))
    out = head + rows.to(tl.int64)[None, :] * NKB
    for b0 in range(0, NKB, BLOCK):
        blk = b0 + tl.arange(0, BLOCK)
        ok = (blk < NKB)[:, None] & row_ok[None, :]
        m = tl.load(M + head + blk.to(tl.int64)[:, None] * ROWS + rows[None, :], mask=ok, other=float("-inf"))
        tl.store(SCALE + out + blk[:, None], tl.exp2(m - lse[None, :]), mask=ok)


@triton.jit
def _sums(
    P, C, VERT, SLASH,
    N, L, NKB, NOB,
    ROWS: tl.constexpr, KEYS: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """P (H, N, L) bf16 and C (H, N, NKB) float32, so that p = P * C[row, key // BLOCK_N]; VERT, SLASH (H, L)
    float32. Program (kb, h): vertical over keys [kb * KEYS, +KEYS) and slash over offset block NOB - 1 - kb,
    whose keys pos_i - o end at block kb's (its neighbours just read them). KEYS divides BLOCK_N."""
    kb = tl.program_id(0)
    h = tl.program_id(1).to(tl.int64)
    t = tl.arange(0, KEYS)
    keys = kb * KEYS + t
    key_ok = keys < L
    own_blk = (kb * KEYS) // BLOCK_N
    ob = NOB - 1 - kb
    offsets = ob * KEYS + (KEYS - 1 - t)  # reversed, so each row's skewed keys ascend with t
    off_ok = offsets < L
    vert = tl.zeros([ROWS, KEYS], tl.float32)
    slash = tl.zeros([ROWS, KEYS], tl.float32)
    p_head = P + h * N * L
    c_head = C + h * N * NKB
    full = (kb * KEYS + KEYS <= L) & (ob * KEYS + KEYS <= L)  # all keys and offsets of this program exist
    for i0 in range(0, N, ROWS):
        rows = i0 + tl.arange(0, ROWS)
        row_ok = rows < N
        row_p = p_head + rows.to(tl.int64)[:, None] * L
        row_c = c_head + rows * NKB
        c = tl.load(row_c + own_blk, mask=row_ok, other=0.0)
        first = (L - N) + rows - ob * KEYS - (KEYS - 1)  # each row's first skewed key (may be < 0)
        blk_a = tl.maximum(first, 0) // BLOCK_N  # the window spans blocks blk_a and blk_a + 1 at most
        c_a = tl.load(row_c + blk_a, mask=row_ok, other=0.0)
        c_b = tl.load(row_c + blk_a + 1, mask=row_ok & (blk_a + 1 < NKB), other=0.0)
        skew = first[:, None] + t[None, :]  # key pos_i - o
        if full & (i0 + ROWS <= N) & ((L - N) + i0 - ob * KEYS - (KEYS - 1) >= 0):  # no element masks
            p = tl.load(row_p + keys[None, :])
            p_skew = tl.load((row_p + first[:, None]) + t[None, :])
        else:  # the last rows, the first offsets (keys < 0) or the keys past L
            p = tl.load(row_p + keys[None, :], mask=row_ok[:, None] & key_ok[None, :], other=0.0)
            p_skew = tl.load(row_p + skew, mask=row_ok[:, None] & off_ok[None, :] & (skew >= 0), other=0.0)
        vert += p.to(tl.float32) * c[:, None]
        c = tl.where(skew >= ((blk_a + 1) * BLOCK_N)[:, None], c_b[:, None], c_a[:, None])
        slash += p_skew.to(tl.float32) * c
    tl.store(VERT + h * L + keys, tl.sum(vert, 0), mask=key_ok)
    tl.store(SLASH + h * L + offsets, tl.sum(slash, 0), mask=off_ok)


def supports(query: torch.Tensor, key: torch.Tensor) -> bool:
    """Whether `vertical_slash` takes these inputs (else the caller's torch path runs)."""
    return (
        query.dtype in DTYPES
        and key.dtype == query.dtype
        and query.shape[-1] in HEAD_DIMS
        and key.shape[-1] == query.shape[-1]
        and query.shape[1] % key.shape[1] == 0
        and query.shape[-2] == key.shape[-2] >= 1
        and key.stride(-1) == 1
    )


def vertical_slash(
    query: torch.Tensor, key: torch.Tensor, scaling: float, n_last: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(vertical, slash) float32 (B, Hq, L), as `estimation.vertical_slash_scores`: per key column and per
    offset o = query - key, the summed causal attention of the last n = min(n_last, L) queries. Inputs as
    there (query (B, Hq, L, D), key (B, Hkv, L, D), GQA); see `supports` for the dtypes and head dims."""
    B, Hq, L, D = query.shape
    Hkv = key.shape[1]
    groups = Hq // Hkv
    n = min(n_last, L)
    rows = groups * n
    dev = query.device
    vertical = torch.empty(B, Hq, L, dtype=torch.float32, device=dev)
    slash = torch.empty_like(vertical)
    nkb = triton.cdiv(L, BLOCK_N)
    assert BLOCK_N % SUM_KEYS == 0, "a _sums key block must lie in one _scores block"
    chunk = max(1, min(Hkv, _CHUNK_ELEMENTS // max(1, rows * L)))  # KV heads per pass
    buffer = torch.empty(chunk * rows * L, dtype=torch.bfloat16, device=dev)
    for b in range(B):
        for g0 in range(0, Hkv, chunk):
            g1 = min(Hkv, g0 + chunk)
            h0, h1 = g0 * groups, g1 * groups
            hc = g1 - g0
            q = (query[b, h0:h1, L - n :, :] * scaling).reshape(hc, rows, D).contiguous()
            k = key[b, g0:g1]
            probs = buffer[: hc * rows * L].view(hc, rows, L)
            m = torch.empty(hc, nkb, rows, dtype=torch.float32, device=dev)  # key block major
            sumexp = torch.empty_like(m)
            grid = (triton.cdiv(rows, BLOCK_M), triton.cdiv(nkb, STRETCH), hc)  # row blocks fastest
            _scores[grid](
                q, k, probs, m, sumexp, rows, n, L, nkb, k.stride(0), k.stride(1),
                D=D, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, STRETCH=STRETCH,
                INTERPRETED=not query.is_cuda, num_warps=SCORE_WARPS, num_stages=SCORE_STAGES,
            )  # fmt: skip
            scale = torch.empty(hc, rows, nkb, dtype=torch.float32, device=dev)  # p = probs * scale[row, blk]
            _row_scale[(triton.cdiv(rows, ROW_SCALE_ROWS), hc)](
                m, sumexp, scale, rows, nkb,
                BLOCK=min(triton.next_power_of_2(nkb), ROW_SCALE_BLOCK), ROW_BLOCK=ROW_SCALE_ROWS,
            )  # fmt: skip
            nob = triton.cdiv(L, SUM_KEYS)
            _sums[(nob, hc * groups)](
                probs.view(hc * groups, n, L), scale, vertical[b, h0:h1], slash[b, h0:h1],
                n, L, nkb, nob, ROWS=SUM_ROWS, KEYS=SUM_KEYS, BLOCK_N=BLOCK_N, num_warps=SUM_WARPS,
            )  # fmt: skip
    return vertical, slash
