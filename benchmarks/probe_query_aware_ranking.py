"""GPU costs behind flexprefill's query-aware ranking at 128k (BENCHMARKS.md, run 14-15): torch's ways to sort
each head's causal tiles, the float64 scan of the sorted probabilities, and the settings of the prefix-sum
kernels (`sparse_eval/kernels/query_aware_prefix.py`). Random inputs of the real shape: 28 heads, 1024 tiles of
128 tokens per row, 524,800 causal tiles per head. Prints a table and writes probe_query_aware_ranking.json.

    python benchmarks/probe_query_aware_ranking.py --out $OUT
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path

import torch
import triton

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, not installed

from sparse_eval.kernels import query_aware_prefix as prefix


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--heads", type=int, default=28)
    parser.add_argument("--tiles", type=int, default=1024, help="query tiles per row (128k in 128-tiles)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench_out")))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("this probe times CUDA kernels; no GPU here")
    R, nb, bs = args.heads, args.tiles, 128
    T = nb * (nb + 1) // 2
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.rand(R, T, device="cuda", generator=g)
    x[x < 0.5] = 0.25  # ties, which the stable order breaks by position
    rows: list[dict] = []

    def time(name: str, fn) -> None:
        ms = triton.testing.do_bench(fn, rep=200)
        rows.append({"what": name, "ms": ms})
        print(f"{ms:8.3f} ms  {name}", flush=True)

    values, order = torch.sort(x, dim=-1, descending=True, stable=True)
    time(f"torch.sort stable, {R} x {T}", lambda: torch.sort(x, dim=-1, descending=True, stable=True))
    bits = x.view(torch.int32).to(torch.int64)
    heads = torch.arange(R, device="cuda", dtype=torch.int64)[:, None]

    def composite() -> torch.Tensor:  # head in the high bits, the descending float bits below: one 1-D sort
        return torch.sort(((heads << 32) | (0x7FFFFFFF - bits)).flatten()).indices

    assert torch.equal(composite().view(R, T) - heads * T, order), "composite keys must give the stable order"
    time("one 1-D sort of composite int64 keys", composite)
    time("a stable sort per row", lambda: [torch.sort(x[r], descending=True, stable=True) for r in range(R)])
    time("float64 cast, then torch.cumsum", lambda: torch.cumsum(values.double(), -1))
    time("torch.cumsum(dtype=float64)", lambda: torch.cumsum(values, -1, dtype=torch.float64))

    probs = values / nb
    positions = torch.argsort(torch.rand(R, T, device="cuda", generator=g), -1)
    ranks = torch.argsort(torch.rand(2, R, nb, device="cuda", generator=g), -1)
    default = prefix.BLOCK, prefix.WARPS
    reference = prefix.query_aware_prefix(probs, positions, ranks, 4, nb * bs, bs)
    try:
        for block, warps in itertools.product((256, 512, 1024, 2048, 4096), (2, 4, 8)):
            prefix.BLOCK, prefix.WARPS = block, warps
            got = prefix.query_aware_prefix(probs, positions, ranks, 4, nb * bs, bs)
            assert torch.equal(got[1], reference[1]) and torch.allclose(
                got[0], reference[0], rtol=1e-13, atol=0
            )
            time(f"query_aware_prefix BLOCK={block} WARPS={warps}", lambda: prefix.query_aware_prefix(
                probs, positions, ranks, 4, nb * bs, bs))  # fmt: skip
    finally:
        prefix.BLOCK, prefix.WARPS = default
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "heads": R,
        "tiles": T,
        "rows": rows,
    }
    (args.out / "probe_query_aware_ranking.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
