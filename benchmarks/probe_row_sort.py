"""A Triton row sort (`benchmarks/triton_row_sort.py`) against torch's stable sort, on the rows the 128k
selections sort (BENCHMARKS.md: 5-7x slower than torch, so it was not adopted).

    python benchmarks/probe_row_sort.py --out $OUT

Rows: flexprefill's 28 x 524,800 pooled tile probabilities (values and positions), its 56 x 131,072 token
probabilities (values only), vertical_slash's 28 x 131,072 scores (values and positions). For each,
`triton.testing.do_bench` medians (ms) over 3 rounds of `torch.sort(descending=True, stable=True)` and of
`sort_rows_descending` at four block and warp settings; `same` = the kernel's values and
positions equal torch's bit for bit. Writes probe_row_sort.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
from triton.testing import do_bench

sys.path.insert(0, str(Path(__file__).resolve().parent))

import triton_row_sort as row_sort  # the costed kernel; not part of sparse_eval

SHAPES = {  # name: (rows, entries per row, positions needed)
    "flexprefill tiles": (28, 524_800, True),
    "flexprefill tokens": (56, 131_072, False),
    "vertical_slash columns": (28, 131_072, True),
}
SETTINGS = [(4096, 8), (4096, 4), (2048, 4), (8192, 8)]  # (BLOCK, WARPS); the first is the module's default


def _rows(rows: int, n: int) -> torch.Tensor:
    g = torch.Generator(device="cuda").manual_seed(0)
    return torch.softmax(4 * torch.randn(rows, n, device="cuda", generator=g), -1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench_out")))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("this probe times CUDA sorts; no GPU here")
    default = (row_sort.BLOCK, row_sort.WARPS)
    results: dict[str, dict] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    for name, (rows, n, positions) in SHAPES.items():
        x = _rows(rows, n)
        expected = torch.sort(x, dim=-1, descending=True, stable=True)
        cell: dict[str, object] = {"rows": rows, "n": n, "positions": positions}
        times: dict[str, list[float]] = {"torch": []}
        same: dict[str, bool] = {}
        for block, warps in SETTINGS:
            row_sort.BLOCK, row_sort.WARPS = block, warps
            label = f"kernel {block} x {warps}"
            values, order = row_sort.sort_rows_descending(x, positions)
            ok = torch.equal(values.view(torch.int32), expected.values.view(torch.int32))
            same[label] = bool(ok and (order is None or torch.equal(order.long(), expected.indices)))
            times[label] = []

        def torch_sort(x=x) -> None:
            torch.sort(x, dim=-1, descending=True, stable=True)

        def kernel_sort(x=x, positions=positions) -> None:
            row_sort.sort_rows_descending(x, positions)

        for _ in range(args.rounds):
            times["torch"].append(do_bench(torch_sort))
            for block, warps in SETTINGS:
                row_sort.BLOCK, row_sort.WARPS = block, warps
                times[f"kernel {block} x {warps}"].append(do_bench(kernel_sort))
        row_sort.BLOCK, row_sort.WARPS = default
        cell["ms"] = {k: [round(t, 4) for t in v] for k, v in times.items()}
        cell["same"] = same
        results[name] = cell
        for label, ts in times.items():
            print(
                f"{name:24s} {label:18s} {[round(t, 4) for t in ts]} same={same.get(label, True)}", flush=True
            )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe_row_sort.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
