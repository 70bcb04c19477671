"""Does a second CUDA stream shorten flexprefill's selection at 128k? (BENCHMARKS.md, run 16: no; dropped.)

    python benchmarks/probe_select_streams.py --out $OUT

On random bf16 inputs (28 query / 4 KV heads, d = 128), triton.testing.do_bench medians over 3 rounds of:
`select` as shipped; the last-query estimate (its 4 KV groups in a row) and the same kernels with the groups
alternating over two streams and two probability buffers (checked bitwise equal); the query-aware ranking alone
(pooling, tile products, softmax, the stable sort of the causal tiles); both one after the other; and the ranking
on a second stream beside the estimate. Prints a table and writes probe_select_streams.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
import triton
from triton.testing import do_bench

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, not installed

from sparse_eval.kernels import last_query as lq
from sparse_eval.methods.block_sparse import mean_pool, tile_products
from sparse_eval.methods.flexprefill import FlexPrefill

L, HQ, HKV, D, N_LAST, BS = 131072, 28, 4, 128, 512, 128


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench_out")))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("this probe times CUDA streams; no GPU here")
    nb = L // BS
    g = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(1, HQ, L, D, device="cuda", dtype=torch.bfloat16, generator=g)
    k = torch.randn(1, HKV, L, D, device="cuda", dtype=torch.bfloat16, generator=g)
    scaling = D**-0.5
    tri = torch.ones(nb, nb, dtype=torch.bool, device="cuda").tril().flatten().nonzero().squeeze(-1)
    side, side2 = torch.cuda.Stream(), torch.cuda.Stream()

    def estimate():
        return lq.vertical_slash(q, k, scaling, N_LAST)

    def estimate_two_streams():
        groups = HQ // HKV
        rows = groups * N_LAST
        vertical = torch.empty(1, HQ, L, dtype=torch.float32, device="cuda")
        slash = torch.empty_like(vertical)
        nkb = triton.cdiv(L, lq.BLOCK_N)
        main_stream = torch.cuda.current_stream()
        streams = [main_stream, side2]
        side2.wait_stream(main_stream)
        buffers = [torch.empty(rows * L, dtype=torch.bfloat16, device="cuda") for _ in range(2)]
        for g0 in range(HKV):
            with torch.cuda.stream(streams[g0 % 2]):
                h0, h1 = g0 * groups, (g0 + 1) * groups
                qq = (q[0, h0:h1, L - N_LAST :, :] * scaling).reshape(1, rows, D).contiguous()
                kk = k[0, g0 : g0 + 1]
                probs = buffers[g0 % 2].view(1, rows, L)
                m = torch.empty(1, nkb, rows, dtype=torch.float32, device="cuda")
                sumexp = torch.empty_like(m)
                grid = (triton.cdiv(rows, lq.BLOCK_M), triton.cdiv(nkb, lq.STRETCH), 1)
                lq._scores[grid](
                    qq, kk, probs, m, sumexp, rows, N_LAST, L, nkb, kk.stride(0), kk.stride(1), D=D,
                    BLOCK_M=lq.BLOCK_M, BLOCK_N=lq.BLOCK_N, STRETCH=lq.STRETCH, INTERPRETED=False,
                    num_warps=lq.SCORE_WARPS, num_stages=lq.SCORE_STAGES,
                )  # fmt: skip
                scale = torch.empty(1, rows, nkb, dtype=torch.float32, device="cuda")
                lq._row_scale[(triton.cdiv(rows, lq.ROW_SCALE_ROWS), 1)](
                    m, sumexp, scale, rows, nkb,
                    BLOCK=min(triton.next_power_of_2(nkb), lq.ROW_SCALE_BLOCK), ROW_BLOCK=lq.ROW_SCALE_ROWS,
                )  # fmt: skip
                nob = triton.cdiv(L, lq.SUM_KEYS)
                lq._sums[(nob, groups)](
                    probs.view(groups, N_LAST, L), scale, vertical[0, h0:h1], slash[0, h0:h1],
                    N_LAST, L, nkb, nob, ROWS=lq.SUM_ROWS, KEYS=lq.SUM_KEYS, BLOCK_N=lq.BLOCK_N,
                    num_warps=lq.SUM_WARPS,
                )  # fmt: skip
        main_stream.wait_stream(side2)
        return vertical, slash

    def ranking():
        pooled_q, pooled_k = mean_pool(q, BS), mean_pool(k, BS)
        logits = tile_products(pooled_q.reshape(1, HKV, 7 * nb, D), pooled_k, scaling, causal_period=nb)
        probs = torch.softmax(logits.view(HQ, nb, nb), -1)
        return torch.sort(probs.flatten(-2)[:, tri], dim=-1, descending=True, stable=True)

    def serial():
        estimate()
        ranking()

    def ranking_on_side_stream(est=estimate):
        main_stream = torch.cuda.current_stream()
        side.wait_stream(main_stream)
        with torch.cuda.stream(side):
            ranking()
        est()
        main_stream.wait_stream(side)

    method = FlexPrefill(compression=10.0)
    v1, s1 = estimate()
    v2, s2 = estimate_two_streams()
    torch.cuda.synchronize()
    out: dict = {"same_pipelined": bool(torch.equal(v1, v2) and torch.equal(s1, s2))}
    cases = [
        ("select", lambda: method.select(q, k, scaling=scaling, layer_idx=0)),
        ("estimate", estimate),
        ("estimate_2streams", estimate_two_streams),
        ("qa_branch", ranking),
        ("serial", serial),
        ("qa_side_stream", ranking_on_side_stream),
        ("qa_side+est_2streams", lambda: ranking_on_side_stream(estimate_two_streams)),
    ]
    for _ in range(3):
        for name, fn in cases:
            out.setdefault(name, []).append(round(do_bench(fn, warmup=50, rep=400, return_mode="median"), 4))
    for name, value in out.items():
        print(f"{name:24s} {value}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe_select_streams.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
