"""vertical_slash's key-list fill at 128k, as shipped and in variants (BENCHMARKS.md, run 17).

    python benchmarks/probe_key_lists.py --out $OUT

For the patterns VerticalSlash(compression=c) selects on random bf16 inputs (28 query / 4 KV heads, d = 128),
c = 10 and 20, times `kernels.key_lists.fill_key_lists` over its row chunks as `backends.gathered.attention`
makes them (triton.testing.do_bench medians, 2 rounds), with the column list as built and as int32 / int64,
other column steps and warp counts, and every row's column count set to 0 (wrong lists: what the column phase
costs). `same` = identical lists and lengths (a digest of every row's entries). Writes probe_key_lists.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
from triton.testing import do_bench

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, not installed

from sparse_eval.backends import gathered
from sparse_eval.kernels import key_lists
from sparse_eval.methods.vertical_slash import VerticalSlash

L, HQ, HKV, D = 131072, 28, 4, 128


def _fill_times(c: float, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> dict:
    """The fill's times and sameness for the pattern VerticalSlash(compression=c) selects on q, k."""
    positions = torch.arange(L, device="cuda")[None, :]
    pattern = VerticalSlash(compression=c).select(q, k, scaling=D**-0.5, layer_idx=0)
    columns, n_before = gathered.columns_before_rows(pattern.column_flags(), pattern.q_block)
    _, _, page_base, page_stride = gathered._pages(k, v, HQ)
    rows = HQ * pattern.num_q_blocks
    chunk = gathered.rows_per_table(L)
    starts = range(0, rows, chunk)
    tables = [torch.empty(min(rows, r0 + chunk) - r0, L, dtype=torch.int32, device="cuda") for r0 in starts]
    lengths = torch.empty(rows, dtype=torch.int32, device="cuda")

    def fill(cols=columns, counts=n_before, **options):
        def run():
            for table, r0 in zip(tables, starts, strict=True):
                key_lists.fill_key_lists(
                    table, lengths, r0, cols, counts, pattern.blocks, page_base, page_stride, L,
                    pattern.q_block, pattern.kv_block, **options,
                )  # fmt: skip

        return run

    def digest() -> tuple[int, int]:
        torch.cuda.synchronize()
        total = 0
        for table, r0 in zip(tables, starts, strict=True):
            n = lengths[r0 : r0 + table.shape[0]].long()
            kept = torch.where(positions < n[:, None], table.long(), 0)
            total += int((kept * (positions % 7 + 1)).sum())
        return total, int(lengths.long().sum())

    fill()()
    reference = digest()
    other = columns.long() if columns.dtype == torch.int32 else columns.int()
    variants = {
        "shipped": fill(),
        f"{other.dtype}_columns".replace("torch.", ""): fill(cols=other),
        "col_block_1024": fill(column_block=1024),
        "col_block_256": fill(column_block=256),
        "warps_8": fill(num_warps=8),
        "warps_4": fill(num_warps=4),
        "no_columns_bound": fill(counts=torch.zeros_like(n_before)),
    }
    result: dict = {"list_entries": reference[1], "columns": int(pattern.column_flags().sum())}
    for name, run in variants.items():
        run()
        same = digest() == reference
        ms = [round(do_bench(run, warmup=10, rep=100, return_mode="median"), 4) for _ in range(2)]
        result[name] = {"ms": ms, "same": same}
        print(f"c={c:g} {name:18s} {ms} same={same}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench_out")))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("this probe times a CUDA kernel; no GPU here")
    g = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(1, HQ, L, D, device="cuda", dtype=torch.bfloat16, generator=g)
    k = torch.randn(1, HKV, L, D, device="cuda", dtype=torch.bfloat16, generator=g)
    v = torch.randn_like(k)
    out = {f"c{c:g}": _fill_times(c, q, k, v) for c in (10.0, 20.0)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe_key_lists.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
