"""Selection and block-mask cost of the tile-only prefill methods, torch path vs the tile-row kernel.

    python benchmarks/bench_tile_select.py --lengths 32k 128k \
        --methods block_sparse:q_block_size=128,block_size=64 flexprefill --out $OUT

For every length, method and compression, on the same random bf16 inputs (28 query / 4 KV heads, d = 128):
"before" runs with `SPARSE_EVAL_TILE_KERNEL=off`, flexprefill's long scans as single torch scans and its
query-aware sort over all tiles (the torch path before the tile-row kernel), "after" as the code runs.
Times (medians of `triton.testing.do_bench`): `select` alone; `prep` = select + the pair count for the
report + the block-mask indices and `BlockMask` (everything before the attention kernel); `total` = the
whole prefill on FlexAttention (Triton backend unless FLASH is usable). Both paths must select the same tiles and count the same pairs (checked, recorded). Dense cuDNN
SDPA is timed at each length for reference. A short table is printed; JSON goes to `--out`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_attention import D, bench_ms, parse_length, qkv, run_prefill

from sparse_eval.backends import flex, tile_index
from sparse_eval.backends.pattern import BlockPattern, attended_pairs, tile_kinds
from sparse_eval.fidelity.runner import MethodSpec
from sparse_eval.methods import flexprefill_rule as flexprefill


@contextmanager
def torch_path() -> Any:
    """The torch path before the kernel: no tile-row kernel; flexprefill's row scans as one torch scan each
    and its query-aware sort over every tile, not only the causal ones."""
    saved_env, saved_scan = os.environ.get(tile_index.ENV), flexprefill._row_cumsum
    saved_tables = flexprefill._shape_tables
    os.environ[tile_index.ENV] = "off"
    flexprefill._row_cumsum = lambda x, part, pieces=None: torch.cumsum(x, -1)  # type: ignore[assignment]

    def every_tile(seq_len: int, block: int, device: Any) -> tuple[torch.Tensor, ...]:
        *tables, causal = saved_tables(seq_len, block, device)
        return (*tables, torch.arange(math.ceil(seq_len / block) ** 2, device=causal.device))

    flexprefill._shape_tables = every_tile  # type: ignore[assignment]
    try:
        yield
    finally:
        flexprefill._row_cumsum = saved_scan  # type: ignore[assignment]
        flexprefill._shape_tables = saved_tables  # type: ignore[assignment]
        if saved_env is None:
            os.environ.pop(tile_index.ENV, None)
        else:
            os.environ[tile_index.ENV] = saved_env


def prep(method: Any, q: torch.Tensor, k: torch.Tensor) -> Any:
    """Everything a prefill does before the attention kernel (tile-only patterns)."""
    pattern = method.select(q, k, scaling=D**-0.5, layer_idx=0)
    attended_pairs(pattern)
    L, bq, bk = pattern.seq_len, pattern.q_block, pattern.kv_block
    return flex._block_mask(*flex._tile_indices(pattern), (bq, bk), flex._causal, (L, L))


def kept(pattern: BlockPattern) -> torch.Tensor:
    grid = pattern.blocks
    return grid & tile_kinds(pattern.seq_len, pattern.q_block, pattern.kv_block, grid.device)[0]


def cell(spec: MethodSpec, c: float, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rep: int) -> dict:
    method = spec.build(c, backend="flex")
    row: dict[str, Any] = {}
    patterns = {}
    for label in ("before", "after"):
        with torch_path() if label == "before" else _nothing():
            run_prefill(method, q, k, v)  # compile / cache warm-up
            torch.cuda.synchronize()
            patterns[label] = method.select(q, k, scaling=D**-0.5, layer_idx=0)
            row[f"{label}_form"] = "tiles" if patterns[label].tiles is not None else "grid"
            row[f"{label}_select_ms"] = bench_ms(
                partial(method.select, q, k, scaling=D**-0.5, layer_idx=0), rep
            )
            row[f"{label}_prep_ms"] = bench_ms(partial(prep, method, q, k), rep)
            _, row["achieved"] = run_prefill(method, q, k, v)
            row[f"{label}_total_ms"] = bench_ms(partial(run_prefill, method, q, k, v), 2 * rep)
    row["same_tiles"] = bool(torch.equal(kept(patterns["before"]), kept(patterns["after"])))
    after = patterns["after"]
    if after.tiles is not None:  # the kernel's block-mask indices are the torch path's, tensor for tensor
        grid = kept(after)
        full = tile_kinds(after.seq_len, after.q_block, after.kv_block, grid.device)[1]
        expected = (*flex.selected_first(grid & ~full), *flex.selected_first(grid & full))
        got = (after.tiles.part_num, after.tiles.part_idx, after.tiles.full_num, after.tiles.full_idx)
        row["same_tiles"] &= all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    row["same_pairs"] = bool(
        torch.equal(attended_pairs(patterns["before"]), attended_pairs(patterns["after"]))
    )
    return row


@contextmanager
def _nothing() -> Any:
    yield


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", nargs="*", default=["32k", "128k"])
    parser.add_argument(
        "--methods", nargs="*", default=["block_sparse:q_block_size=128,block_size=64", "flexprefill"]
    )
    parser.add_argument("--compressions", nargs="*", type=float, default=[5.0, 10.0, 20.0])
    parser.add_argument("--time-budget", type=float, default=1e9, help="seconds; later cells are skipped")
    parser.add_argument("--check", action="store_true", help="then bench_attention's --check-quick at 1000")
    parser.add_argument("--profile", type=float, default=0.0, help="profile one prefill at this compression")
    parser.add_argument("--out", default=os.environ.get("OUT", "bench_out"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_tile_select.py needs a CUDA GPU", file=sys.stderr)
        return 2
    end = time.perf_counter() + args.time_budget
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                               "argv": sys.argv[1:], "rows": []}  # fmt: skip
    path = out_dir / "bench_tile_select.json"
    ok = True
    for L in [parse_length(x) for x in args.lengths]:
        q, k, v = qkv(L)
        rep = 300 if L > 65536 else 100
        sdpa = partial(
            F.scaled_dot_product_attention, q, k, v, is_causal=True, enable_gqa=True, scale=D**-0.5
        )
        dense = bench_ms(sdpa, rep)
        results["rows"].append({"L": L, "method": "dense_sdpa", "ms": dense})
        print(f"L={L}: dense cuDNN SDPA {dense:.2f} ms", flush=True)
        for name in args.methods:
            spec = MethodSpec.parse(name)
            for c in args.compressions:
                base = {"L": L, "method": name, "compression": c}
                if time.perf_counter() > end:
                    results["rows"].append({**base, "error": "skipped: time budget spent"})
                    continue
                try:
                    row = {**base, **cell(spec, c, q, k, v, rep)}
                except Exception as error:  # one cell must not cost the others
                    row = {**base, "error": f"{type(error).__name__}: {str(error)[:300]}"}
                    ok = False
                    print(f"  {name} c={c:g}: {row['error']}", flush=True)
                else:
                    ok &= row["same_tiles"] and row["same_pairs"]
                    print(
                        f"  {name:44s} c={c:4.1f} achieved={row['achieved']:6.2f} "
                        f"select {row['before_select_ms']:6.2f} -> {row['after_select_ms']:6.2f}  "
                        f"prep {row['before_prep_ms']:6.2f} -> {row['after_prep_ms']:6.2f}  "
                        f"total {row['before_total_ms']:7.2f} -> {row['after_total_ms']:7.2f} ms  "
                        f"same tiles {row['same_tiles']} pairs {row['same_pairs']} ({row['after_form']})",
                        flush=True,
                    )
                results["rows"].append(row)
                path.write_text(json.dumps(results, indent=1))
        del q, k, v
        torch.cuda.empty_cache()
    if args.profile and time.perf_counter() < end + 60:  # where the time goes now, at the longest length
        from bench_attention import profile_select

        L = max(parse_length(x) for x in args.lengths)
        profile_select(results, L, args.profile, out_dir, args.methods)
    if args.check:  # the flex backend (indices from the kernel) against the float32 masked reference
        from bench_attention import check

        try:
            ok &= check(results, (1000,), quick=True, methods=("block_sparse", "flexprefill"))
        except TypeError:  # a check() without the methods filter
            ok &= check(results, (1000,), quick=True)
    path.write_text(json.dumps(results, indent=1))
    print(f"wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
