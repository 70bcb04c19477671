"""What reading the compression report back in every call costs: one layer's prefill timed with it (how
`bench_attention.py` timed until fbd43e9) and without it (how it times now), alternated in one process.

    python benchmarks/bench_report_read.py --out $OUT   # results/bench_attention_report_read_ab_h200.json

A model reads its report once per prompt, so the per-call read (a host sync plus the report's host work)
is benchmark overhead, not a cost of the method. Needs a CUDA GPU (FLASH where `longtasks[flash]` is installed).
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_attention import bench_ms, parse_length, prefill_layers, qkv, run_prefill

from sparse_eval.fidelity.runner import MethodSpec

METHODS = ("vertical_slash", "block_sparse:q_block_size=128,block_size=64", "flexprefill")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--lengths", nargs="*", type=parse_length, default=["32k", "128k"], help="e.g. 32k 128k"
    )
    parser.add_argument("--compression", type=float, default=10.0)
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the two timings per cell")
    parser.add_argument("--out", default="bench_out")
    args = parser.parse_args()
    for name in args.methods:  # a bad name ends here, in one line, before any GPU work
        try:
            MethodSpec.parse(name)
        except (ValueError, KeyError, TypeError) as error:
            parser.error(f"--methods {name!r}: {error}")
    if not torch.cuda.is_available():
        print("bench_report_read.py needs a CUDA GPU", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    for L in args.lengths:
        q, k, v = qkv(L)
        rep = 1000 if L > 65536 else 300
        for name in args.methods:
            method = MethodSpec.parse(name).build(args.compression, backend="flex")
            run_prefill(method, q, k, v)  # compile and warm up
            torch.cuda.synchronize()
            for _ in range(args.rounds):
                row = {
                    "L": L,
                    "method": name,
                    "with_report_read_ms": bench_ms(partial(run_prefill, method, q, k, v), rep),
                    "without_ms": bench_ms(partial(prefill_layers, method, q, k, v), rep),
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
        (out_dir / "bench_report_read.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
