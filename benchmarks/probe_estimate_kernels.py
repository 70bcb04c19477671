"""Per-kernel GPU time of the last-query estimate (`sparse_eval/kernels/last_query.py`), two versions side by
side in one process: the kernel module of an older tree and the current one.

Loading two copies of this kernel module is safe (it registers nothing; methods are another matter, see
`ab_versions.py`). For each n (the estimate's query count: 256 for vertical_slash, 512 for flexprefill), each
version runs twice, alternated: the whole estimate's `triton.testing.do_bench` median and each kernel's CUDA
time per call from `torch.profiler` over 5 calls. Then the largest differences of the two versions' vertical
and slash sums, and whether they are equal bit for bit. Random bf16 inputs, 28 query / 4 KV heads, d = 128.

    mkdir -p /tmp/old && git archive <rev> sparse_eval | tar -x -C /tmp/old
    python benchmarks/probe_estimate_kernels.py --old-tree /tmp/old --length 128k --out $OUT
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_attention import parse_length

HQ, HKV, D = 28, 4, 128
KERNEL = Path("sparse_eval/kernels/last_query.py")


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kernel_times(fn: Any, calls: int = 5) -> dict[str, float]:
    """CUDA time per call (ms) of each kernel `fn` launches, from the profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    return {
        e.key: round(e.self_device_time_total / calls / 1e3, 4)
        for e in prof.key_averages()
        if e.self_device_time_total / calls / 1e3 > 0.001
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--old-tree", type=Path, required=True, help="a checkout of the older version")
    parser.add_argument("--length", default="128k")
    parser.add_argument("--n-last", nargs="*", type=int, default=[256, 512])
    parser.add_argument("--out", type=Path, default=Path("bench_out"))
    args = parser.parse_args()
    old_path = args.old_tree / KERNEL
    if not old_path.is_file():
        parser.error(f"--old-tree must hold {KERNEL}, got {args.old_tree}")
    try:
        L = parse_length(args.length)
    except ValueError:
        parser.error(f"--length takes a token count like 4096 or 128k, got {args.length!r}")
    if not torch.cuda.is_available():
        print("probe_estimate_kernels.py needs a CUDA GPU", file=sys.stderr)
        return 2
    from triton.testing import do_bench

    versions = {
        "old": load(old_path, "last_query_old"),
        "new": load(Path(__file__).parents[1] / KERNEL, "last_query_new"),
    }
    g = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(1, HQ, L, D, device="cuda", dtype=torch.bfloat16, generator=g)
    k = torch.randn(1, HKV, L, D, device="cuda", dtype=torch.bfloat16, generator=g)
    out: dict[str, Any] = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "argv": sys.argv[1:],
    }
    for n in args.n_last:
        row: dict[str, Any] = {}
        sums = {}
        for label in ("old", "new", "old", "new"):
            module = versions[label]

            def fn(module: ModuleType = module, n: int = n) -> tuple[torch.Tensor, torch.Tensor]:
                return module.vertical_slash(q, k, D**-0.5, n)

            sums[label] = fn()
            timing = {"ms": round(do_bench(fn, warmup=25, rep=300, return_mode="median"), 4)}
            timing["kernels_ms"] = kernel_times(fn)
            row.setdefault(label, []).append(timing)
            print(
                f"n={n} {label}: estimate {timing['ms']:.3f} ms  kernels {timing['kernels_ms']}", flush=True
            )
        (v_old, s_old), (v_new, s_new) = sums["old"], sums["new"]
        row["max_rel_vertical"] = float(((v_new - v_old).abs() / v_old.abs().clamp_min(1e-12)).max())
        row["max_abs_slash"] = float((s_new - s_old).abs().max())
        row["equal"] = bool(torch.equal(v_old, v_new) and torch.equal(s_old, s_new))
        print(
            f"n={n}: vertical max rel {row['max_rel_vertical']:.1e}, slash max abs {row['max_abs_slash']:.1e}, "
            f"equal {row['equal']}",
            flush=True,
        )
        out[f"n{n}"] = row
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe_estimate_kernels.json").write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
