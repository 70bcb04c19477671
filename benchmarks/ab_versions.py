"""Selection time and selected pattern of two versions of the code, side by side on the same inputs.

    mkdir -p /tmp/old && git archive <rev> sparse_eval | tar -x -C /tmp/old   # the older code
    python benchmarks/ab_versions.py --old-tree /tmp/old --methods vertical_slash flexprefill \
        --lengths 128k --compressions 10 20 --out $OUT

Why: a change to a selection rule must keep its pattern and should make it faster, and the honest way to
show both is the old and the new code on one card, on the same inputs, alternated. Loading an old copy of a
module into the same process is fragile (a second `register_method` of the same class name replaces the
registry's class, so both sides can silently run one version); here each version runs in its own process,
with its own tree first on `sys.path`, and the rounds alternate which version goes first.

Each child builds the same random bf16 inputs (28 query / 4 KV heads, d = 128, a fixed seed), times `select`
(`triton.testing.do_bench` median on CUDA, a wall-clock median elsewhere) and, in the first round, saves the
pattern (tile grid, column flags, attended pairs per head). The parent prints per cell the medians over rounds
and whether the two patterns are equal entry by entry (else how many tile and column entries differ), and
writes JSON to `--out`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

HQ, HKV, D = 28, 4, 128
NEW_TREE = Path(__file__).resolve().parents[1]


def parse_length(text: str) -> int:
    return int(text[:-1]) * 1024 if text.lower().endswith("k") else int(text)


def pattern_file(cell: str) -> str:
    return hashlib.sha1(cell.encode()).hexdigest()[:16] + ".pt"


def child(args: argparse.Namespace) -> None:
    """Runs inside one version's tree: time each cell's select, save its pattern; one JSON line to stdout."""
    import torch

    import sparse_eval
    from sparse_eval.backends.pattern import attended_pairs
    from sparse_eval.fidelity.runner import MethodSpec

    here = Path(sparse_eval.__file__).resolve()
    if not here.is_relative_to(Path.cwd().resolve()):  # an installed copy shadowed the tree
        raise SystemExit(f"sparse_eval came from {here}, not from the tree {Path.cwd()}")

    device = "cuda" if torch.cuda.is_available() else "cpu"
    results: dict[str, float] = {}
    for L in (parse_length(x) for x in args.lengths):
        g = torch.Generator(device=device).manual_seed(args.seed)
        q = torch.randn(1, HQ, L, D, generator=g, device=device, dtype=torch.bfloat16)
        k = torch.randn(1, HKV, L, D, generator=g, device=device, dtype=torch.bfloat16)
        for spec in args.methods:
            for c in args.compressions:
                method = MethodSpec.parse(spec).build(c, backend="flex")  # the tree's own parser and registry

                select = partial(method.select, q, k, scaling=D**-0.5, layer_idx=0)

                cell = f"{spec} L={L} c={c:g}"
                pattern = select()  # compiles and warms up
                if args.pattern_dir:
                    flags = pattern.column_flags() if pattern.has_columns else None
                    saved = {"blocks": pattern.blocks, "columns": flags, "pairs": attended_pairs(pattern)}
                    torch.save(
                        {key: v.cpu() if v is not None else None for key, v in saved.items()},
                        Path(args.pattern_dir) / pattern_file(cell),
                    )
                results[cell] = _time_ms(select, device)
    print("AB_RESULT " + json.dumps(results), flush=True)


def _time_ms(fn: Any, device: str) -> float:
    if device == "cuda":
        from triton.testing import do_bench

        return float(do_bench(fn, warmup=50, rep=200, return_mode="median"))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def run_child(tree: Path, args: argparse.Namespace, pattern_dir: Path | None) -> dict[str, float]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--seed", str(args.seed)]
    command += ["--lengths", *args.lengths, "--methods", *args.methods]
    command += ["--compressions", *(str(c) for c in args.compressions)]
    if pattern_dir is not None:
        pattern_dir.mkdir(parents=True, exist_ok=True)
        command += ["--pattern-dir", str(pattern_dir)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True)
    lines = [x for x in done.stdout.splitlines() if x.startswith("AB_RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"the child in {tree} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("AB_RESULT "))


def pattern_differences(old_dir: Path, new_dir: Path, cell: str) -> dict[str, Any]:
    """How far the two versions' patterns are apart: differing entries of the tile grid and of the column
    flags (with their totals), and the largest relative change of a head's attended pairs; `same` when all
    are equal entry by entry. A selection reordered by rounding differs in a few entries, a broken one in many."""
    import torch

    a, b = torch.load(old_dir / pattern_file(cell)), torch.load(new_dir / pattern_file(cell))
    out: dict[str, Any] = {}
    for key in ("blocks", "columns"):
        if a[key] is None or b[key] is None or a[key].shape != b[key].shape:
            out[key] = None if a[key] is None and b[key] is None else "shapes differ"
            continue
        out[key] = [int((a[key] != b[key]).sum()), a[key].numel()]
    pa, pb = a["pairs"].double(), b["pairs"].double()
    out["pairs_max_rel"] = float(((pb - pa).abs() / pa.clamp(min=1)).max()) if pa.shape == pb.shape else None
    out["same"] = all(
        (a[k] is None and b[k] is None) or (a[k] is not None and b[k] is not None and torch.equal(a[k], b[k]))
        for k in ("blocks", "columns", "pairs")
    )
    return out


def describe(diff: dict[str, Any]) -> str:
    if diff["same"]:
        return "same"
    parts = [
        f"{key} {v[0]}/{v[1]}" if isinstance(v, list) else f"{key} {v}"
        for key, v in diff.items()
        if key in ("blocks", "columns") and v is not None
    ]
    rel = diff["pairs_max_rel"]
    return "differs: " + ", ".join(
        [*parts, "pairs shapes differ" if rel is None else f"pairs max rel {rel:.1e}"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--old-tree", type=Path, help="a checkout of the older version (git archive REV)")
    parser.add_argument(
        "--methods", nargs="*", default=["vertical_slash"], help="specs, e.g. block_sparse:q_block_size=128"
    )
    parser.add_argument("--lengths", nargs="*", default=["128k"])
    parser.add_argument("--compressions", nargs="*", type=float, default=[10.0])
    parser.add_argument("--rounds", type=int, default=3, help="old/new pairs, alternating which goes first")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench_out")))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pattern-dir", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.old_tree is None or not (args.old_tree / "sparse_eval").is_dir():
        parser.error(f"--old-tree must be a checkout holding sparse_eval/, got {args.old_tree}")
    for text in args.lengths:
        try:
            parse_length(text)
        except ValueError:
            parser.error(f"--lengths takes token counts like 4096 or 128k, got {text!r}")
    trees = {"old": args.old_tree.resolve(), "new": NEW_TREE}
    times: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    for r in range(args.rounds):
        for version in ("old", "new") if r % 2 == 0 else ("new", "old"):
            patterns = args.out / "patterns" / version if r == 0 else None
            for cell, ms in run_child(trees[version], args, patterns).items():
                times[version].setdefault(cell, []).append(ms)
    rows = []
    print(f"{'cell':50s} {'old ms':>8s} {'new ms':>8s}  pattern")
    for cell in times["new"]:
        old, new = statistics.median(times["old"][cell]), statistics.median(times["new"][cell])
        diff = pattern_differences(args.out / "patterns" / "old", args.out / "patterns" / "new", cell)
        rows.append(
            {
                "cell": cell,
                "old_ms": times["old"][cell],
                "new_ms": times["new"][cell],
                "same": diff["same"],
                "differences": diff,
            }
        )
        print(f"{cell:50s} {old:8.3f} {new:8.3f}  {describe(diff)}")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"old_tree": str(args.old_tree), "argv": sys.argv[1:], "rows": rows}
    (args.out / "ab_versions.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
