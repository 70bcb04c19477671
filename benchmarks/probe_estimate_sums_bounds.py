"""Bounds on the last-query estimate's `_sums` kernel at 128k (BENCHMARKS.md, run 16).

    python benchmarks/probe_estimate_sums_bounds.py --out $OUT

One KV group (7 heads x 512 rows) of random bf16 probabilities: `_sums` as shipped
(`sparse_eval/kernels/last_query.py`) against a copy made from its source with one switch: unchanged, without
the diagonal (slash) sums (a bound: the vertical sums alone), and with the skewed loads read from an aligned
address (wrong sums: a bound on vectorising them); plus other row / key / warp settings. triton.testing.do_bench
medians (ms), 2 rounds. Writes probe_estimate_sums_bounds.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import sys
import tempfile
from pathlib import Path

import torch
from triton.testing import do_bench

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, not installed

from sparse_eval.kernels import last_query as lq

L, N_LAST, GROUPS = 131072, 512, 7
SKEWED = "            p_skew = tl.load((row_p + first[:, None]) + t[None, :])"


def _variant_module():
    """`_sums` with a constexpr MODE: 0 as shipped, 1 without the slash sums, 2 skewed loads from aligned rows.
    Written to a file and imported: triton reads a kernel's source from its file."""
    source = inspect.getsource(lq._sums.fn)  # with its @triton.jit line
    edits = {
        "ROWS: tl.constexpr, KEYS: tl.constexpr, BLOCK_N: tl.constexpr,": (
            "ROWS: tl.constexpr, KEYS: tl.constexpr, BLOCK_N: tl.constexpr, MODE: tl.constexpr,"
        ),
        SKEWED: (
            "            if MODE == 2:\n"
            "                p_skew = tl.load(row_p + (first[:, None] // 8 * 8) + t[None, :])\n"
            "            else:\n" + SKEWED.replace("            ", "                ", 1)
        ),
        "        slash += p_skew.to(tl.float32) * c\n": (
            "        if MODE != 1:\n            slash += p_skew.to(tl.float32) * c\n"
        ),
    }
    for old, new in edits.items():
        if old not in source:
            raise SystemExit(f"_sums changed since this probe was written: {old.strip()!r} not found")
        source = source.replace(old, new)
    path = Path(tempfile.mkdtemp()) / "sums_variants.py"
    path.write_text("import triton\nimport triton.language as tl\n\n\n" + source)
    spec = importlib.util.spec_from_file_location("sums_variants", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench_out")))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("this probe times a CUDA kernel; no GPU here")
    variants = _variant_module()
    nkb = L // lq.BLOCK_N
    g = torch.Generator(device="cuda").manual_seed(0)
    probs = (
        torch.rand(GROUPS * N_LAST * L, device="cuda", generator=g).to(torch.bfloat16).view(GROUPS, N_LAST, L)
    )
    scale = torch.rand(GROUPS * N_LAST * nkb, device="cuda", generator=g).view(1, GROUPS * N_LAST, nkb)
    vertical = torch.empty(GROUPS, L, device="cuda")
    slash = torch.empty_like(vertical)

    def run(kernel, rows=lq.SUM_ROWS, keys=lq.SUM_KEYS, warps=lq.SUM_WARPS, **mode):
        nob = L // keys
        return lambda: kernel[(nob, GROUPS)](
            probs, scale, vertical, slash, N_LAST, L, nkb, nob, ROWS=rows, KEYS=keys, BLOCK_N=lq.BLOCK_N,
            num_warps=warps, **mode,
        )  # fmt: skip

    cases = {
        "shipped": run(lq._sums),
        "variant_same": run(variants._sums, MODE=0),
        "vertical_only": run(variants._sums, MODE=1),
        "slash_aligned_bound": run(variants._sums, MODE=2),
        "same_rows16_w4": run(variants._sums, 16, 64, 4, MODE=0),
        "same_rows4_w2": run(variants._sums, 4, 64, 2, MODE=0),
        "same_rows8_keys32_w1": run(variants._sums, 8, 32, 1, MODE=0),
    }
    out: dict = {}
    for _ in range(2):
        for name, fn in cases.items():
            out.setdefault(name, []).append(round(do_bench(fn, warmup=30, rep=300, return_mode="median"), 4))
    for name, value in out.items():
        print(f"{name:24s} {value}  ms per KV group (x4 at 28 / 4 heads)")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe_estimate_sums_bounds.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
