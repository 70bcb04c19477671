"""Quest decode vs dense decode on the GPU: one decode step's attention, per step, eager and in CUDA graphs.

    python benchmarks/bench_decode.py --check --tune --out $OUT  # kernel == reference at real sizes, launch
                                                                 # settings tried at 128k, then the table
    python benchmarks/bench_decode.py --lengths 128k --batches 1 # one cell
    python benchmarks/bench_decode.py --tune --check --lengths 32k 128k --compressions 20

One layer of Qwen2.5-7B's attention (28 query / 4 KV heads, d = 128, bf16), random inputs, a cache of L tokens
per sequence, batch B. Rows: dense SDPA (PyTorch's default backend), Quest through torch ops (`fused=False`:
page scores, topk, gather, SDPA) and Quest through the Triton kernels (`fused=True`), at a 4k-token budget
and at c = 5, 10, 20; page summaries are kept between steps as the method keeps them. "eager" launches every op
from Python; "graph" replays the step captured in a CUDA graph (as serving engines run decode). Times are
`triton.testing.do_bench` medians in microseconds. `--check` first compares, per cell, the page list the
kernel path reads with the torch path's pages (exactly) and its output with the masked reference (after
`--tune`, so it checks the settings the rows use); every timed row also checks that 20 graph replays give the
eager output bit for bit. At the 4k budget each cell also times the stages alone (page scores; the selection
and the attention apart; the attention that selects its own pages). `--tune` times the whole step under each
launch setting of TUNING (stage by stage, keeping the best) and the cost of kernel boundaries in a graph
(1, 2, 4 and 8 tiny kernels). JSON goes to `--out` (default: $OUT, else ./bench_out).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparse_eval.methods.quest import budget_pages, page_summaries, quest_decode_attention, select_tokens

HQ, HKV, D, PAGE = 28, 4, 128, 16
BUDGET = 4096  # tokens: the issue's "4k-token budget"


def parse_length(text: str) -> int:
    text = text.lower()
    return int(text[:-1]) * 1024 if text.endswith("k") else int(text)


def bench_us(fn: Callable[[], Any], rep_ms: int) -> float:
    from triton.testing import do_bench

    return 1000 * float(do_bench(fn, warmup=25, rep=rep_ms, return_mode="median"))


def graph_us(fn: Callable[[], Any], rep_ms: int) -> float:
    """Median of `fn` captured once in a CUDA graph and replayed: the kernels without Python and launch costs."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return bench_us(graph.replay, rep_ms)


def replays_match(fn: Callable[[], torch.Tensor], expect: torch.Tensor, replays: int = 20) -> bool:
    """Whether `fn` captured in a CUDA graph gives `expect` bit for bit on every one of `replays` replays (the
    kernels of a step may overlap there: a race would show here, not in the eager check)."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    same = True
    for _ in range(replays):
        graph.replay()
        same &= bool(torch.equal(out, expect))
    return same


def boundaries(rep_ms: int) -> dict[str, float]:
    """Graph replay time of 1, 2, 4 and 8 tiny kernels in a row: the fixed cost of a replay and of a kernel
    boundary, against which the step's kernel count is weighed."""
    x = torch.zeros(1, device="cuda")

    def tiny(n: int) -> Callable[[], None]:
        return lambda: [x.add_(1) for _ in range(n)] and None

    return {f"{n}_kernels_graph_us": graph_us(tiny(n), rep_ms) for n in (1, 2, 4, 8)}


def inputs(batch: int, length: int, seed: int = 7) -> tuple[torch.Tensor, ...]:
    g = torch.Generator(device="cuda").manual_seed(seed)
    q = torch.randn(batch, HQ, 1, D, device="cuda", dtype=torch.bfloat16, generator=g)
    k = torch.randn(batch, HKV, length, D, device="cuda", dtype=torch.bfloat16, generator=g)
    v = torch.randn(batch, HKV, length, D, device="cuda", dtype=torch.bfloat16, generator=g)
    return q, k, v


def configs(length: int, compressions: list[float]) -> list[tuple[str, float]]:
    return [("4k budget", length / BUDGET)] + [(f"c={c:g}", c) for c in compressions]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def check(lengths: list[int], batches: list[int], compressions: list[float]) -> list[dict[str, Any]]:
    """Kernel vs torch path at real sizes: identical page sets, outputs close to the masked reference."""
    from sparse_eval.kernels.quest_decode import page_list

    rows = []
    for L in lengths:
        for B in batches:
            q, k, v = inputs(B, L, seed=11)
            summaries = page_summaries(k, PAGE)
            for label, c in [*configs(L, compressions), ("c=1 (dense)", 1.0)]:
                for share in (True, False) if label == "4k budget" else (True,):
                    extra = budget_pages(L, c, PAGE)
                    pages = page_list(q, summaries, L, extra, PAGE, share)
                    tokens = select_tokens(q, summaries, L, c, PAGE, share)
                    ref_sets = [set((row // PAGE).tolist()) for row in tokens.flatten(0, 1)]
                    same = [set(row.tolist()) for row in pages] == ref_sets
                    kw = {"scaling": D**-0.5, "compression": c, "page_size": PAGE, "share_pages": share}
                    fused, n = quest_decode_attention(q, k, v, summaries=summaries, fused=True, **kw)
                    masked, n_ref = quest_decode_attention(q, k, v, summaries=summaries, gather=False, **kw)
                    gathered, _ = quest_decode_attention(q, k, v, summaries=summaries, fused=False, **kw)
                    row = {
                        "L": L, "batch": B, "config": label, "share_pages": share, "same_pages": same,
                        "same_attended": n == n_ref, "err_kernel_vs_masked": rel_err(fused, masked),
                        "err_torch_vs_masked": rel_err(gathered, masked),
                    }  # fmt: skip
                    if c == 1.0:
                        dense = F.scaled_dot_product_attention(q, k, v, scale=D**-0.5, enable_gqa=True)
                        row["err_kernel_vs_dense"] = rel_err(fused, dense)
                    rows.append(row)
                    print(f"check L={L} B={B} {label:>11} share={share!s:5} pages same={same} "
                          f"err kernel {row['err_kernel_vs_masked']:.1e} torch {row['err_torch_vs_masked']:.1e}"
                          + (f" vs dense {row['err_kernel_vs_dense']:.1e}" if c == 1.0 else ""), flush=True)  # fmt: skip
            del q, k, v, summaries
            torch.cuda.empty_cache()
    return rows


def speed(L: int, B: int, compressions: list[float], rep_ms: int) -> list[dict[str, Any]]:
    """One (L, B) cell: dense, then Quest torch / kernel, eager / graph, per configuration."""
    from sparse_eval.kernels.quest_decode import attend_pages, page_keys, top_pages

    q, k, v = inputs(B, L)
    summaries = page_summaries(k, PAGE)

    def dense() -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, scale=D**-0.5, enable_gqa=True)

    base = {"L": L, "batch": B}
    rows = [
        {**base, "method": "dense", "eager_us": bench_us(dense, rep_ms), "graph_us": graph_us(dense, rep_ms)}
    ]
    d_eager, d_graph = rows[0]["eager_us"], rows[0]["graph_us"]
    print(f"L={L // 1024}k B={B}: dense SDPA eager {d_eager:.1f} us, graph {d_graph:.1f} us", flush=True)
    for label, c in configs(L, compressions):
        row: dict[str, Any] = {**base, "method": "quest", "config": label, "compression": c}
        for path, fused in (("torch", False), ("kernel", True)):

            def step(fused: bool = fused, c: float = c) -> torch.Tensor:
                return quest_decode_attention(
                    q, k, v, scaling=D**-0.5, compression=c, page_size=PAGE, summaries=summaries, fused=fused
                )[0]

            attended = quest_decode_attention(q, k, v, scaling=D**-0.5, compression=c, summaries=summaries)[1]
            row["achieved"] = L / attended
            row[f"{path}_eager_us"] = bench_us(step, rep_ms)
            row[f"{path}_graph_us"] = graph_us(step, rep_ms)
            if fused:
                row["graph_replays_match_eager"] = replays_match(step, step())
        if label == "4k budget":  # where the kernel path's time goes (graph replays, so no launch costs)
            extra = budget_pages(L, c, PAGE)
            keys = page_keys(q, summaries, L, PAGE, True)
            pages = top_pages(keys, extra)
            blank = torch.empty_like(pages)
            stages = {
                "page_keys": lambda: page_keys(q, summaries, L, PAGE, True),
                "top_pages": lambda e=extra, ks=keys: top_pages(ks, e),
                "attend_pages": lambda p=pages: attend_pages(q, k, v, p, PAGE, True, D**-0.5),
                "attend_select": lambda ks=keys, p=blank: attend_pages(
                    q, k, v, p, PAGE, True, D**-0.5, keys=ks
                ),
            }
            row["stage_graph_us"] = {name: graph_us(fn, rep_ms) for name, fn in stages.items()}
            row["stage_eager_us"] = {name: bench_us(fn, rep_ms) for name, fn in stages.items()}
        row["speedup_graph"] = d_graph / row["kernel_graph_us"]
        row["speedup_eager"] = d_eager / row["kernel_eager_us"]
        rows.append(row)
        print(f"  {label:>9} (achieved {row['achieved']:5.2f}x): torch eager {row['torch_eager_us']:7.1f} "
              f"graph {row['torch_graph_us']:7.1f} | kernel eager {row['kernel_eager_us']:6.1f} "
              f"graph {row['kernel_graph_us']:6.1f} | vs dense graph x{row['speedup_graph']:.2f}, "
              f"eager x{row['speedup_eager']:.2f} | replays match {row['graph_replays_match_eager']}"
              + (f"\n    stages graph {row['stage_graph_us']} eager {row['stage_eager_us']}"
                 if "stage_graph_us" in row else ""), flush=True)  # fmt: skip
    return rows


TUNING = {  # kernel-module launch settings tried by --tune, stage by stage (the first of each is the default)
    "select": [  # who selects (the attention programs, or one program per row), warps, programs
        {"FUSE_SELECT": f, "ATTEND_WARPS": w, "PROGRAMS_PER_SM": p, "SELECT_WARPS": s}
        for f, w, p, s in (
            (True, 16, 1, 16),
            (True, 8, 1, 16),
            (True, 8, 2, 16),
            (True, 32, 1, 16),
            (False, 4, 2, 16),
            (False, 4, 2, 32),
            (False, 16, 1, 16),
        )
    ],
    "score": [
        {"SCORE_PROGRAMS_PER_SM": p, "SCORE_PAGES": n, "SCORE_WARPS": w, "SCORE_STAGES": st}
        for p, n, w, st in ((4, 32, 4, 3), (2, 64, 8, 3), (8, 16, 4, 3), (4, 32, 4, 1))
    ],
}


SELECTION = ("SELECT_CHUNK",)  # reported as set


def tune(L: int, B: int, rep_ms: int, only: list[str]) -> dict[str, Any]:
    """Time the whole kernel step (graph replays, 4k budget) under each launch setting of each stage in
    `only`, keep the fastest. A setting that fails (e.g. a launch option the driver refuses) is reported and
    skipped."""
    from sparse_eval.kernels import quest_decode as kern

    q, k, v = inputs(B, L)
    summaries = page_summaries(k, PAGE)
    c = L / BUDGET

    def step() -> torch.Tensor:
        return quest_decode_attention(
            q, k, v, scaling=D**-0.5, compression=c, page_size=PAGE, summaries=summaries, fused=True
        )[0]

    defaults = {name: getattr(kern, name) for options in TUNING.values() for o in options for name in o}
    report: dict[str, Any] = {"L": L, "batch": B, "boundaries": boundaries(rep_ms)}
    print(f"tune: kernel boundaries in a graph (us): {report['boundaries']}", flush=True)
    for stage in [s for s in TUNING if s in only]:
        timed = []
        for setting in TUNING[stage]:
            for name, value in {**defaults, **setting}.items():
                setattr(kern, name, value)
            try:
                timed.append((graph_us(step, rep_ms), bench_us(step, rep_ms), setting))
            except Exception as exc:  # reported, and the setting is not used
                print(f"tune {stage} {setting}: failed: {exc!r}"[:300], flush=True)
                timed.append((float("inf"), float("inf"), {**setting, "error": repr(exc)[:300]}))
        best = min(timed, key=lambda t: t[0])
        for name, value in {**defaults, **TUNING[stage][timed.index(best)]}.items():
            setattr(kern, name, value)
            defaults[name] = value
        report[stage] = {
            "best": TUNING[stage][timed.index(best)],
            "tried": [{"graph_us": g, "eager_us": e, **st} for g, e, st in timed],
        }
        print(f"tune L={L // 1024}k B={B} {stage} (graph / eager us): "
              + ", ".join(f"{g:.1f}/{e:.1f}" for g, e, _ in timed)
              + f" -> {report[stage]['best']} ({timed[0][0]:.1f} -> {best[0]:.1f} us)", flush=True)  # fmt: skip
    return report


def print_table(rows: list[dict[str, Any]]) -> None:
    print("\n| L | B | Quest | achieved | dense eager / graph (us) | torch eager / graph | kernel eager / graph "
          "| kernel vs dense (graph / eager) |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---:|---:|")
    dense = {(r["L"], r["batch"]): r for r in rows if r["method"] == "dense"}
    for r in rows:
        if r["method"] != "quest":
            continue
        d = dense[(r["L"], r["batch"])]
        print(f"| {r['L'] // 1024}k | {r['batch']} | {r['config']} | {r['achieved']:.2f} "
              f"| {d['eager_us']:.1f} / {d['graph_us']:.1f} | {r['torch_eager_us']:.1f} / {r['torch_graph_us']:.1f} "
              f"| {r['kernel_eager_us']:.1f} / {r['kernel_graph_us']:.1f} "
              f"| {r['speedup_graph']:.2f}x / {r['speedup_eager']:.2f}x |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", nargs="+", default=["32k", "128k"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--compressions", nargs="+", type=float, default=[5.0, 10.0, 20.0])
    parser.add_argument(
        "--check", action="store_true", help="kernel vs reference at real sizes first (after --tune)"
    )
    parser.add_argument(
        "--tune", action="store_true", help="pick the kernels' launch settings first (L max, B 1)"
    )
    parser.add_argument("--tune-stages", nargs="+", default=list(TUNING), choices=list(TUNING))
    parser.add_argument("--rep-ms", type=int, default=100, help="do_bench measuring time per row")
    parser.add_argument("--out", default=os.environ.get("OUT", "bench_out"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_decode.py needs a CUDA GPU (and triton)")
    import triton

    lengths = [parse_length(x) for x in args.lengths]
    from sparse_eval.kernels import quest_decode as kern

    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "shape": {"q_heads": HQ, "kv_heads": HKV, "head_dim": D, "page_size": PAGE, "dtype": "bfloat16"},
        "command": " ".join(sys.argv),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    if args.tune:
        results["tune"] = tune(max(lengths), 1, 30, args.tune_stages)
        torch.cuda.empty_cache()
    if args.check:
        results["check"] = check(lengths, args.batches, args.compressions)
        failed = [r for r in results["check"] if not (r["same_pages"] and r["same_attended"])]
        failed += [r for r in results["check"] if r["err_kernel_vs_masked"] > 2e-2]
        results["check_passed"] = not failed
        print(
            f"check: {len(results['check']) - len(failed)}/{len(results['check'])} cases passed", flush=True
        )
    results["settings"] = {
        name: getattr(kern, name)
        for name in [*(n for options in TUNING.values() for o in options for n in o), *SELECTION]
    }
    print(f"kernel settings: {results['settings']}", flush=True)
    rows = []
    for L in lengths:
        for B in args.batches:
            rows += speed(L, B, args.compressions, args.rep_ms)
            torch.cuda.empty_cache()
            (out / "bench_decode.json").write_text(json.dumps({**results, "rows": rows}, indent=1))
    results["rows"] = rows
    results["graph_replays_match"] = all(r.get("graph_replays_match_eager", True) for r in rows)
    results["seconds"] = time.time() - start
    (out / "bench_decode.json").write_text(json.dumps(results, indent=1))
    print_table(rows)
    print(f"\ngraph replays equal eager outputs in every row: {results['graph_replays_match']}")
    print(f"{time.time() - start:.0f} s; results in {out / 'bench_decode.json'}")


if __name__ == "__main__":
    main()
