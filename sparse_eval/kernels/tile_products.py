"""Float32 products of pooled queries and pooled keys on tensor cores (3xTF32), as one Triton kernel.

Why: block_sparse and flexprefill rank key tiles by mean-pooled q . mean-pooled k, a float32 (rows, D) x
(D, tiles) product per KV head. cuBLAS runs float32 on CUDA cores unless TF32 is allowed process-wide, and
plain TF32 rounds the operands to 10 bits (8e-4 relative error at 128k, measured), so near-equal tiles trade
places. 3xTF32 adds the products of each operand's TF32 remainder and keeps float32-level error (6e-7
relative): 0.27 vs 0.38 ms at 128k with 128 x 64 tiles on an H200, 0.52 vs 0.74 ms at 32k with 16 x 16 tiles
(benchmarks/results/ab_tile_products_h200.json). Runs under `TRITON_INTERPRET=1` on CPU tensors too.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_M, BLOCK_N, MAX_BLOCK_K = 128, 128, 64  # the best of 6 tile shapes on the H200 at both lengths
WARPS, STAGES = 8, 2
HEAD_DIMS = (16, 32, 64, 128, 256)


@triton.jit
def _products(
    A, B, C, M, N, SCALE, PERIOD,
    K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    CAUSAL: tl.constexpr,
):  # fmt: skip
    """A (G, M, K), B (G, N, K), C (G, M, N), float32 and contiguous: C[g] = (A[g] @ B[g].T) * SCALE. CAUSAL:
    row r is query tile r % PERIOD, and its entries past that column are -inf (blocks holding none of the
    others skip their products)."""
    g = tl.program_id(2).to(tl.int64)
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)
    acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
    live = True
    if CAUSAL:
        live = tl.program_id(1) * BLOCK_N <= tl.max(tl.where(rows < M, rows % PERIOD, 0))
    if live:
        for k0 in tl.static_range(0, K, BLOCK_K):
            d = k0 + tl.arange(0, BLOCK_K)
            a = tl.load(A + (g * M + rows[:, None]) * K + d[None, :], mask=rows[:, None] < M, other=0.0)
            b = tl.load(B + (g * N + cols[:, None]) * K + d[None, :], mask=cols[:, None] < N, other=0.0)
            acc = tl.dot(a, tl.trans(b), acc, input_precision="tf32x3")
    acc = acc * SCALE  # one float32 rounding, as torch's multiply by a Python float
    if CAUSAL:
        acc = tl.where(cols[None, :] > (rows % PERIOD)[:, None], float("-inf"), acc)
    tl.store(
        C + (g * M + rows[:, None]) * N + cols[None, :], acc, mask=(rows[:, None] < M) & (cols[None, :] < N)
    )


def supports(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether `products` takes these operands (else the caller's torch.matmul runs)."""
    return (
        a.dtype == b.dtype == torch.float32
        and a.dim() == b.dim() >= 2
        and a.shape[:-2] == b.shape[:-2]
        and a.shape[-1] == b.shape[-1]
        and a.shape[-1] in HEAD_DIMS
        and a.device == b.device
    )


def products(
    a: torch.Tensor, b: torch.Tensor, scale: float = 1.0, causal_period: int | None = None
) -> torch.Tensor:
    """(a @ b.transpose(-1, -2)) * scale in float32 for a (..., M, K) and b (..., N, K) (see `supports`).
    `causal_period`: a's row r is query tile r % causal_period, and entry (r, j) is -inf for key tiles j past
    it; those products are not computed (flexprefill's pooled tile logits, which its softmax masks anyway)."""
    *lead, M, K = a.shape
    N = b.shape[-2]
    a3 = a.reshape(-1, M, K).contiguous()
    b3 = b.reshape(-1, N, K).contiguous()
    out = torch.empty(a3.shape[0], M, N, dtype=torch.float32, device=a.device)
    if out.numel():
        grid = (triton.cdiv(M, BLOCK_M), triton.cdiv(N, BLOCK_N), a3.shape[0])
        _products[grid](
            a3, b3, out, M, N, float(scale), causal_period or 1, K=K, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N,
            BLOCK_K=min(K, MAX_BLOCK_K), CAUSAL=causal_period is not None, num_warps=WARPS, num_stages=STAGES,
        )  # fmt: skip
    return out.view(*lead, M, N)
