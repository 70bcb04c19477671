"""Where FLASH went wrong on vertical_slash's two passes, and the tile pass's index kernel vs its torch path.

    python benchmarks/probe_flash_columns.py --lengths 1000 32768 --index-lengths 131072 32768 --out $OUT

Part 1, per length: a vertical_slash pattern (exact columns); each pass alone (`flex._tile_pass`, tiles
without the column positions; `flex._column_pass`, the gathered columns, K/V of n_cols keys) on FLASH (its
raw log-sum-exp: the convention probe is bypassed) and on Triton, against the float32 reference of that
pass (L <= 8192) and against each other: output relative error, the LSE's largest error as returned, times
1 / ln 2 and times ln 2, and how rows with no key come out. Then the probed convention factor.
Part 2: the tile pass's block-mask indices by `sparse_eval.kernels.column_tiles` vs `selected_first` on
vertical_slash patterns (28 / 4 heads): equal, and their times. JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparse_eval import get_method
from sparse_eval.backends import flash
from sparse_eval.backends import flex as flex_backend
from sparse_eval.backends.pattern import BlockPattern, dense_mask

LN2 = math.log(2.0)


def reference_pass(q, k, v, mask, scaling):
    """float32 (out, lse) of attention restricted to a bool (B, H, L, Lk) mask; empty rows: out 0, lse -inf."""
    groups = q.shape[1] // k.shape[1]
    k = k.float().repeat_interleave(groups, 1)
    v = v.float().repeat_interleave(groups, 1)
    outs, lses = [], []
    for h in range(q.shape[1]):  # one head at a time: bounded memory
        s = (q[:, h].float() @ k[:, h].transpose(-1, -2)) * scaling
        s = s.masked_fill(~mask[:, h], float("-inf"))
        lse = torch.logsumexp(s, -1)
        p = torch.exp(s - lse[..., None]).nan_to_num(0.0)
        outs.append(p @ v[:, h])
        lses.append(lse)
    return torch.stack(outs, 1), torch.stack(lses, 1)


def compare(name: str, out, lse, ref_out, ref_lse) -> dict[str, Any]:
    finite = torch.isfinite(ref_lse)
    row = {"pass": name, "out_rel_err": float((out.float() - ref_out).norm() / ref_out.norm())}
    for label, factor in (("lse_err_raw", 1.0), ("lse_err_div_ln2", 1 / LN2), ("lse_err_mul_ln2", LN2)):
        row[label] = float((lse.float()[finite] * factor - ref_lse[finite]).abs().max())
    empty = ~finite
    row["empty_rows"] = int(empty.sum())
    if row["empty_rows"]:
        row["empty_rows_lse"] = sorted({str(x) for x in lse.float()[empty].flatten()[:8].tolist()})
        row["empty_rows_out_absmax"] = float(out.float()[empty].abs().max())
    return row


def passes(q, k, v, pattern, scaling, raw_flash: bool):
    """(tile out, tile lse, column out, column lse) under the current SPARSE_EVAL_FLASH mode."""
    saved = dict(flex_backend._flash_lse_factors)
    if raw_flash:  # the raw FLASH log-sum-exp: convention factor 1 for every probe key
        key = (q.device, q.dtype, q.shape[-1])
        flex_backend._flash_lse_factors[key] = 1.0
    try:
        flex_backend.backend_counts.clear()
        t_out, t_lse = flex_backend._tile_pass(q, k, v, pattern, scaling)
        c_out, c_lse = flex_backend._column_pass(q, k, v, pattern, scaling)
        return t_out, t_lse, c_out, c_lse, dict(flex_backend.backend_counts)
    finally:
        flex_backend._flash_lse_factors.clear()
        flex_backend._flash_lse_factors.update(saved)


def part1(L: int, device: str, results: dict[str, Any]) -> None:
    g = torch.Generator(device=device).manual_seed(L)
    hq, hkv, d = 8, 2, 128
    q, k, v = (
        torch.randn(1, h, L, d, device=device, dtype=torch.bfloat16, generator=g) for h in (hq, hkv, hkv)
    )
    scaling = d**-0.5
    method = get_method("vertical_slash", compression=4.0, last_q_size=128, backend="flex")
    pattern = method.select(q, k, scaling=scaling, layer_idx=0)
    rows: list[dict[str, Any]] = []
    runs = {}
    for label, mode in (("flash", "on"), ("triton", "off")):
        if label == "flash":
            with flash.forced("auto"):
                if not flash.flex_flash_usable(q.device):
                    continue
        try:
            with flash.forced(mode):
                runs[label] = passes(q, k, v, pattern, scaling, raw_flash=label == "flash")
        except Exception as error:
            rows.append({"L": L, "backend": label, "error": f"{type(error).__name__}: {str(error)[:400]}"})
            print(f"L={L} {label}: {rows[-1]['error']}", flush=True)
    if L <= 8192:
        tiles = BlockPattern(L, pattern.q_block, pattern.kv_block, pattern.blocks, None)
        cols_only = BlockPattern(
            L, pattern.q_block, pattern.kv_block, torch.zeros_like(pattern.blocks), pattern.columns
        )
        col_mask = dense_mask(cols_only)
        tile_mask = dense_mask(tiles) & ~col_mask.any(-2, keepdim=True)
        ref_t = reference_pass(q, k, v, tile_mask, scaling)
        # column pass reference over the full key range (same pairs, same softmax as over gathered columns)
        ref_c = reference_pass(q, k, v, col_mask, scaling)
        for label, (t_out, t_lse, c_out, c_lse, kernels) in runs.items():
            for name, out, lse, ref in (("tiles", t_out, t_lse, ref_t), ("columns", c_out, c_lse, ref_c)):
                rows.append({"L": L, "backend": label, "vs": "reference", "kernels": kernels,
                             **compare(name, out, lse, *ref)})  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    if "flash" in runs and "triton" in runs:
        f, t = runs["flash"], runs["triton"]
        for name, i in (("tiles", 0), ("columns", 2)):
            rows.append({"L": L, "backend": "flash", "vs": "triton", **compare(name, f[i], f[i + 1], t[i].float(), t[i + 1].float())})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    with flash.forced("auto"):
        usable = flash.flex_flash_usable(q.device)
    if usable:
        try:
            results["lse_factor"] = flex_backend._flash_lse_factor(q)
            print(f"probed FLASH lse factor: {results['lse_factor']}", flush=True)
        except Exception as error:
            results["lse_factor_error"] = f"{type(error).__name__}: {str(error)[:400]}"
    results.setdefault("passes", []).extend(rows)


def bench(fn, rep: int = 200) -> float:
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=25, rep=rep, return_mode="median"))


def part2(
    L: int, device: str, results: dict[str, Any], compressions: tuple[float, ...] = (5.0, 20.0)
) -> None:
    """The tile pass's indices by the row kernel vs the torch path on vertical_slash patterns (28 / 4 heads)."""
    g = torch.Generator(device=device).manual_seed(L + 1)
    q, k = (torch.randn(1, h, L, 128, device=device, dtype=torch.bfloat16, generator=g) for h in (28, 4))
    for c in compressions:
        pattern = get_method("vertical_slash", compression=c, backend="flex").select(
            q, k, scaling=128**-0.5, layer_idx=0
        )
        row: dict[str, Any] = {"L": L, "method": "vertical_slash", "compression": c}
        tile_indices(pattern, row)
        print(json.dumps(row), flush=True)
        results.setdefault("tile_indices", []).append(row)


def tile_indices(pattern: BlockPattern, row: dict[str, Any]) -> None:
    """The tile pass's block-mask indices by the row kernel vs the torch path: equal, and their times."""
    L, bq, bk = pattern.seq_len, pattern.q_block, pattern.kv_block
    nkb = pattern.num_kv_blocks
    is_col = torch.zeros(*pattern.columns.shape[:2], L + 1, dtype=torch.int32, device=pattern.blocks.device)
    is_col.scatter_(-1, pattern.columns.clamp(max=L), 1)
    in_tile = (
        torch.nn.functional.pad(is_col[..., :L], (0, nkb * bk - L)).unflatten(-1, (nkb, bk)).amax(-1) > 0
    )
    args = (pattern.blocks, in_tile, L, bq, bk)
    fast = flex_backend._tile_pass_indices(*args)
    row["tile_kernel_used"] = pattern.blocks.is_cuda and not flex_backend._column_tiles_broken
    flex_backend._column_tiles_broken = True
    slow = flex_backend._tile_pass_indices(*args)
    row["tile_indices_equal"] = all(torch.equal(a, b) for a, b in zip(fast, slow, strict=True))
    if pattern.blocks.is_cuda:
        row["tile_indices_torch_ms"] = bench(partial(flex_backend._tile_pass_indices, *args), 100)
        flex_backend._column_tiles_broken = not row["tile_kernel_used"]
        row["tile_indices_kernel_ms"] = bench(partial(flex_backend._tile_pass_indices, *args), 100)
    flex_backend._column_tiles_broken = not row["tile_kernel_used"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", nargs="*", type=int, default=[1000, 4096, 32768])
    parser.add_argument("--index-lengths", nargs="*", type=int, default=[32768, 131072])
    parser.add_argument("--compressions", nargs="*", type=float, default=[5.0, 20.0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=os.environ.get("OUT", "bench_out"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"torch": torch.__version__, "device": args.device}
    path = out / "probe_flash_columns.json"
    for L in args.lengths:
        part1(L, args.device, results)
        path.write_text(json.dumps(results, indent=1))
    for L in args.index_lengths:
        part2(L, args.device, results, tuple(args.compressions))
        path.write_text(json.dumps(results, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
