"""The last-query estimate (vertical and slash sums) of vertical_slash / flexprefill: torch path vs Triton kernel.

    python benchmarks/bench_estimation.py --lengths 32k 128k --n-last 256 512 --out $OUT

For every length, on the same random bf16 inputs (28 query / 4 KV heads, d = 128): for each n, the time of
`estimation.vertical_slash_scores` with `SPARSE_EVAL_ESTIMATE_KERNEL=off` (torch) and as the code runs (the
kernel), medians of `triton.testing.do_bench` side by side, and the largest differences of the two results
(absolute, and relative to each entry where the torch value is at least 1e-3 of the head's largest). Then for
vertical_slash (n = 256) and flexprefill (n = 512) at c = 10: `select` times both ways and how many kept tiles
and exact columns change when the estimate comes from the kernel. A short table is printed; JSON goes to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_attention import D, bench_ms, parse_length, qkv

from sparse_eval import kernels
from sparse_eval.backends.pattern import BlockPattern, attended_pairs, tile_kinds
from sparse_eval.fidelity.runner import MethodSpec
from sparse_eval.methods import estimation

METHODS = ("vertical_slash", "flexprefill")


@contextmanager
def estimate_path(kernel: bool) -> Iterator[None]:
    """The kernel ("auto") or the torch path ("off") for the estimate; the environment is put back."""
    saved = os.environ.get(estimation.ENV)
    os.environ[estimation.ENV] = "auto" if kernel else "off"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(estimation.ENV, None)
        else:
            os.environ[estimation.ENV] = saved


def both(fn: Callable[[], Any], rep: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Times and results of `fn` on the torch path and on the kernel, alternated to share the GPU's state."""
    times: dict[str, list[float]] = {"torch": [], "kernel": []}
    results: dict[str, Any] = {}
    for _ in range(2):
        for label in ("torch", "kernel"):
            with estimate_path(label == "kernel"):
                results[label] = fn()
                times[label].append(bench_ms(fn, rep))
    return {label: min(t) for label, t in times.items()}, results


def differences(ref: torch.Tensor, got: torch.Tensor) -> dict[str, float]:
    diff = (got - ref).abs()
    big = ref.abs() >= 1e-3 * ref.abs().amax(-1, keepdim=True)
    return {
        "max_abs": float(diff.max()),
        "max_rel": float((diff[big] / ref.abs()[big]).max()),
        "ref_max": float(ref.abs().max()),
    }


def kept(pattern: BlockPattern) -> torch.Tensor:
    grid = pattern.blocks
    return grid & tile_kinds(pattern.seq_len, pattern.q_block, pattern.kv_block, grid.device)[0]


def column_mask(pattern: BlockPattern) -> torch.Tensor:
    L = pattern.seq_len
    cols = pattern.columns
    if cols is None:
        return torch.zeros(1, dtype=torch.bool, device=pattern.blocks.device)
    mask = torch.zeros(*cols.shape[:-1], L + 1, dtype=torch.bool, device=cols.device)
    return mask.scatter_(-1, cols, True)[..., :L]


def selection_changes(name: str, q: torch.Tensor, k: torch.Tensor, rep: int) -> dict[str, Any]:
    method = MethodSpec.parse(name).build(10.0, backend="flex")
    select = partial(method.select, q, k, scaling=D**-0.5, layer_idx=0)
    times, patterns = both(select, rep)
    a, b = patterns["torch"], patterns["kernel"]
    tiles_a, tiles_b = kept(a), kept(b)
    cols_a, cols_b = column_mask(a), column_mask(b)
    pairs_a, pairs_b = attended_pairs(a).sum().item(), attended_pairs(b).sum().item()
    return {
        "n_last": method.last_q_size,
        "torch_select_ms": times["torch"],
        "kernel_select_ms": times["kernel"],
        "kept_tiles": int(tiles_a.sum()),
        "changed_tiles": int((tiles_a != tiles_b).sum()),
        "kept_columns": int(cols_a.sum()),
        "changed_columns": int((cols_a != cols_b).sum()),
        "pairs_rel_change": abs(pairs_b - pairs_a) / max(pairs_a, 1),
    }


def kernel_config() -> dict[str, int]:
    module = kernels.optional("last_query")
    return {name: getattr(module, name) for name in module.TUNABLES}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--lengths", nargs="*", type=parse_length, default=["32k", "128k"], help="e.g. 32k 128k"
    )
    parser.add_argument("--n-last", nargs="*", type=int, default=[256, 512])
    parser.add_argument("--no-select", action="store_true", help="skip the selection comparison")
    parser.add_argument("--out", default=os.environ.get("OUT", "bench_out"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_estimation.py needs a CUDA GPU", file=sys.stderr)
        return 2
    if kernels.optional("last_query") is None:
        print("bench_estimation.py needs triton (the kernel)", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "bench_estimation.json"
    results: dict[str, Any] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                               "argv": sys.argv[1:], "kernel_config": kernel_config(), "rows": [], "select": []}  # fmt: skip
    start = time.perf_counter()
    for L in args.lengths:
        q, k, _ = qkv(L)
        rep = 200 if L > 65536 else 100
        for n in args.n_last:
            fn = partial(estimation.vertical_slash_scores, q, k, D**-0.5, n)
            times, out = both(fn, rep)
            (rv, rs), (kv, ks) = out["torch"], out["kernel"]
            row = {"L": L, "n_last": n, "torch_ms": times["torch"], "kernel_ms": times["kernel"],
                   "vertical": differences(rv, kv), "slash": differences(rs, ks)}  # fmt: skip
            results["rows"].append(row)
            print(
                f"L={L:6d} n={n:3d}: torch {row['torch_ms']:6.2f} ms  kernel {row['kernel_ms']:6.2f} ms  "
                f"x{row['torch_ms'] / row['kernel_ms']:.2f}  vertical abs {row['vertical']['max_abs']:.2e} "
                f"rel {row['vertical']['max_rel']:.2e}  slash abs {row['slash']['max_abs']:.2e} "
                f"rel {row['slash']['max_rel']:.2e}",
                flush=True,
            )
            del out, rv, rs, kv, ks
        if not args.no_select:
            for name in METHODS:
                try:
                    row = {"L": L, "method": name, "compression": 10.0, **selection_changes(name, q, k, rep)}
                except Exception as error:  # one method must not cost the rest
                    results["select"].append(
                        {"L": L, "method": name, "error": f"{type(error).__name__}: {error}"}
                    )
                    print(f"  {name}: {results['select'][-1]['error'][:300]}", flush=True)
                    continue
                results["select"].append(row)
                print(
                    f"  {name:15s} c=10 n={row['n_last']}: select {row['torch_select_ms']:6.2f} -> "
                    f"{row['kernel_select_ms']:6.2f} ms  changed tiles {row['changed_tiles']}/"
                    f"{row['kept_tiles']}  columns {row['changed_columns']}/{row['kept_columns']}  "
                    f"pairs {row['pairs_rel_change']:.1e}",
                    flush=True,
                )
        path.write_text(json.dumps(results, indent=1))
        del q, k
        torch.cuda.empty_cache()
    results["wall_s"] = time.perf_counter() - start
    path.write_text(json.dumps(results, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
