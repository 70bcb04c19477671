"""flexprefill's query-aware prefix sums, as two Triton kernels: over each head's ranked causal tiles, the
cumulative probability (float64) and the cumulative pairs the tiles add to the head's floor vertical-slash
pattern (int64; a tile the floor already holds adds 0).

Why: in torch these were a cast of the sorted probabilities to float64, a gain pass and two scans in pieces
(a scan, a scan of the pieces' ends and an add each): about 0.46 ms at 128k on an H200 for 14.7M ranked tiles.
Here `_block_totals` writes each block's two totals and `_scan` scans each block and adds the offsets of the blocks
before it: two reads of the sorted probabilities and the order, one write of each sum. A tile's column,
tile-diagonal and pairs come from its position among the causal tiles by arithmetic (row i = the triangular
root of the position), not from per-tile tables: gathered, three random reads per tile bounded the gain pass
(0.31 -> 0.08 ms). The pairs are integers, exact in any order; the probabilities are summed in float64 in
another order than torch's scan (neither is sequential). Runs under `TRITON_INTERPRET=1` on CPU tensors too.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024  # ranked tiles per program (1024 x 4 warps: the fastest of 21 settings on an H200)
WARPS = 4


@triton.jit
def _block(PROBS, ORDER, RANK_V, RANK_S, T, NB, FLOOR, L, BS, BLOCK: tl.constexpr):
    """Program (s, r)'s block of head r's ranked tiles: (r, s, tile indices k, in range, float64 probabilities,
    int64 gains). PROBS (R, T) float32 in rank order; ORDER (R, T) positions among the causal tiles of BS x BS
    tiles over L tokens, row major (tile (i, j), j <= i, is position i (i + 1) / 2 + j); RANK_V, RANK_S (R, NB)
    the heads' column and diagonal ranks (a tile of the floor pattern, rank < FLOOR, gains 0)."""
    r = tl.program_id(1).to(tl.int64)
    s = tl.program_id(0)
    k = s * BLOCK + tl.arange(0, BLOCK)
    ok = k < T
    prob = tl.load(PROBS + r * T + k, mask=ok, other=0.0).to(tl.float64)
    p = tl.load(ORDER + r * T + k, mask=ok, other=0).to(tl.int64)
    # Row i: the largest i with i (i + 1) / 2 <= p. The float64 root is within one of it; step to the exact.
    i = ((tl.sqrt((8 * p + 1).to(tl.float64)) - 1.0) * 0.5).to(tl.int64)
    i = tl.where(i * (i + 1) // 2 > p, i - 1, i)
    i = tl.where((i + 1) * (i + 2) // 2 <= p, i + 1, i)
    col = p - i * (i + 1) // 2
    diag = i - col
    in_floor = (tl.load(RANK_V + r * NB + col, mask=ok, other=0) < FLOOR) | (
        tl.load(RANK_S + r * NB + diag, mask=ok, other=0) < FLOOR
    )
    rows = tl.minimum(BS, L - i * BS)  # the last query tile may be short
    pairs = tl.where(diag > 0, rows * BS, rows * (rows + 1) // 2)  # below the diagonal: full rows
    return r, s, k, ok, prob, tl.where(in_floor | (ok == 0), 0, pairs)


@triton.jit
def _block_totals(
    PROBS, ORDER, RANK_V, RANK_S, PROB_SUM, GAIN_SUM, T, NB, FLOOR, L, BS, N_BLOCKS,
    BLOCK: tl.constexpr,
):  # fmt: skip
    """Program (s, r): the float64 sum of the probabilities and the sum of the gains over block s of head r."""
    r, s, _, _, prob, gain = _block(PROBS, ORDER, RANK_V, RANK_S, T, NB, FLOOR, L, BS, BLOCK)
    tl.store(PROB_SUM + r * N_BLOCKS + s, tl.sum(prob, 0))
    tl.store(GAIN_SUM + r * N_BLOCKS + s, tl.sum(gain, 0))


@triton.jit
def _scan(
    PROBS, ORDER, RANK_V, RANK_S, PROB_BEFORE, GAIN_BEFORE, PROB_CUM, GAIN_CUM, T, NB, FLOOR, L, BS, N_BLOCKS,
    BLOCK: tl.constexpr,
):  # fmt: skip
    """Program (s, r): block s of head r's inclusive sums, from the totals of the blocks before it."""
    r, s, k, ok, prob, gain = _block(PROBS, ORDER, RANK_V, RANK_S, T, NB, FLOOR, L, BS, BLOCK)
    tl.store(PROB_CUM + r * T + k, tl.cumsum(prob, 0) + tl.load(PROB_BEFORE + r * N_BLOCKS + s), mask=ok)
    tl.store(GAIN_CUM + r * T + k, tl.cumsum(gain, 0) + tl.load(GAIN_BEFORE + r * N_BLOCKS + s), mask=ok)


def query_aware_prefix(
    sorted_probs: torch.Tensor,
    packed_order: torch.Tensor,
    ranks: torch.Tensor,
    floor: int,
    seq_len: int,
    block: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cumulative probability float64, cumulative gain int64), both (R, T), of the ranked causal tiles:
    `sorted_probs` (R, T) float32 their probabilities in rank order, `packed_order` (R, T) their positions
    among the causal tiles of `block` x `block` tiles over `seq_len` tokens, row major; `ranks` (2, R, nb)
    the heads' column and diagonal ranks; a tile of the floor pattern (rank < `floor`) gains 0. As
    `flexprefill_rule`'s torch path: cumsum of the float64 probabilities and of `_query_aware_gain`."""
    R, T = packed_order.shape
    nb = ranks.shape[-1]
    if nb * (nb + 1) // 2 < T or nb != -(-seq_len // block) or sorted_probs.shape != packed_order.shape:
        raise ValueError(
            f"{tuple(sorted_probs.shape)} probabilities, {T} ranked tiles and {nb} tile ranks do not fit "
            f"{seq_len} tokens in {block}-tiles"
        )
    probs = sorted_probs.float().contiguous()
    order = packed_order.contiguous()
    ranks = ranks.contiguous()
    dev = order.device
    prob_cum = torch.empty(R, T, dtype=torch.float64, device=dev)
    gain_cum = torch.empty(R, T, dtype=torch.int64, device=dev)
    if R == 0 or T == 0:
        return prob_cum, gain_cum
    n_blocks = triton.cdiv(T, BLOCK)
    prob_sum = torch.empty(R, n_blocks, dtype=torch.float64, device=dev)
    gain_sum = torch.empty(R, n_blocks, dtype=torch.int64, device=dev)
    shape = (T, nb, floor, seq_len, block, n_blocks)
    _block_totals[(n_blocks, R)](
        probs, order, ranks[0], ranks[1], prob_sum, gain_sum, *shape, BLOCK=BLOCK, num_warps=WARPS
    )
    # exclusive: the sum of the blocks before each one (shifted, not a subtraction that would round)
    prob_before = torch.nn.functional.pad(torch.cumsum(prob_sum, -1)[:, :-1], (1, 0))
    gain_before = torch.nn.functional.pad(torch.cumsum(gain_sum, -1)[:, :-1], (1, 0))
    _scan[(n_blocks, R)](
        probs,
        order,
        ranks[0],
        ranks[1],
        prob_before,
        gain_before,
        prob_cum,
        gain_cum,
        *shape,
        BLOCK=BLOCK,
        num_warps=WARPS,
    )
    return prob_cum, gain_cum
