"""Sparse attention on the GPU: correctness of the FlexAttention backends and speed against dense.

    python benchmarks/bench_attention.py --check                 # flex backend == reference (small shapes)
    python benchmarks/bench_attention.py --lengths 32k 128k      # prefill table (+ --kv --e2e)

Quest's decode step has its own script, benchmarks/bench_decode.py.

Prefill rows time the whole method (index estimation + selection + block masks + attention) on random bf16
inputs with 28 query / 4 KV heads and d=128 (Qwen2.5-7B's attention shape), once per FlexAttention backend
in `--backends`: "flash" (the FLASH backend, FlashAttention-4, where `longtasks[flash]` is installed) and
"triton". Each row reports its speedup against the fastest dense causal kernel measured in the same run
(FA4 where installed, else cuDNN SDPA) and against cuDNN SDPA, and the ratio to the ideal, speedup / c (the
goal is >= 0.7). The achieved compression comes from the method's own report, read once outside the timing
(a model reads it once per prompt, not per layer: reading it per call would add a host sync to every
layer). "time" is one layer's prefill from an idle host; "back to back" is the per-layer time of 4 layers
launched in a row, where the host prepares the next layer while the GPU runs this one, as in a model.
Times are medians of `triton.testing.do_bench`; a row's "host" is the time to queue its `select` from an idle
GPU (about the selection time when host-bound, far below it when GPU-bound; a host read of a device value
would make it as long as the GPU work before that read). A short table is printed; everything goes to JSON in `--out` (default: $OUT, else
./bench_out), rewritten after every row so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparse_eval import get_method
from sparse_eval.backends import flash
from sparse_eval.backends import flex as flex_backend
from sparse_eval.backends.pattern import attended_pairs, dense_mask
from sparse_eval.backends.reference import reference_attention
from sparse_eval.compression import CompressionReport
from sparse_eval.fidelity.runner import MethodSpec

HQ, HKV, D = 28, 4, 128
PREFILL_METHODS = ("vertical_slash", "block_sparse", "flexprefill")
LAYERS = 4  # prefills timed back to back for the per-layer time a model sees (the host runs ahead)


def parse_length(text: str) -> int:
    text = text.lower()
    return int(text[:-1]) * 1024 if text.endswith("k") else int(text)


def bench_ms(fn: Any, rep_ms: int) -> float:
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=max(25, rep_ms // 10), rep=rep_ms, return_mode="median"))


def host_ms(fn: Any, reps: int = 5) -> float:
    """Median host time to return from `fn` with the GPU idle at the start and no sync inside: the time to
    queue its work. Next to its GPU-inclusive time it says whether a call is host-bound, GPU-bound, or waits
    on the GPU (a host read of a device value makes this as long as the GPU work before it)."""
    times = []
    for _ in range(reps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    torch.cuda.synchronize()
    return statistics.median(times)


def qkv(L: int, hq: int = HQ, hkv: int = HKV, d: int = D, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator(device="cuda").manual_seed(seed)
    shapes = [(1, h, L, d) for h in (hq, hkv, hkv)]
    return tuple(torch.randn(s, device="cuda", dtype=torch.bfloat16, generator=g) for s in shapes)


def gpu_available() -> bool:
    return torch.cuda.is_available()


def flash_version() -> str | None:
    """The installed flash-attn-4 version (None when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("flash-attn-4")
    except PackageNotFoundError:
        return None


def run_prefill(method: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, float]:
    report = CompressionReport(method=method.name, target_compression=method.compression)
    out = method.prefill(q, k, v, layer_idx=0, scaling=q.shape[-1] ** -0.5, stats=report.layer(0, "prefill"))
    return out, report.achieved_compression("prefill")


def prefill_layers(method: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layers: int = 1) -> None:
    """`layers` prefills of one layer back to back, counted but not read back: a model reads its report once
    per prompt, not per layer, so the timed call has no host sync (the host may run ahead, as in a model)."""
    stats = CompressionReport(method=method.name, target_compression=method.compression).layer(0, "prefill")
    for _ in range(layers):
        method.prefill(q, k, v, layer_idx=0, scaling=q.shape[-1] ** -0.5, stats=stats)


# ----------------------------------------------------------------------------------------------- check
CHECK_CASES: list[tuple[str, dict[str, Any]]] = [
    ("vertical_slash", {"last_q_size": 128}),
    ("vertical_slash", {"last_q_size": 128, "q_block_size": 64}),
    ("block_sparse", {}),
    ("block_sparse", {"q_block_size": 64, "block_size": 64}),
    ("block_sparse", {"q_block_size": 128, "block_size": 64, "sink_blocks": 0, "local_blocks": 0}),
    ("flexprefill", {"min_budget": 256, "last_q_size": 256}),
    ("flexprefill", {"min_budget": 256, "last_q_size": 256, "tau": 0.0}),
    ("flexprefill", {"min_budget": 256, "last_q_size": 256, "tau": 1.0}),
]


def check(
    results: dict[str, Any],
    lengths: tuple[int, ...] = (1000, 4096),
    quick: bool = False,
    methods: tuple[str, ...] = (),
) -> bool:
    """Fast backend vs the float32 masked-SDPA reference on fresh random inputs for every method, a few
    lengths and tile sizes; compression 1 checks the dense kernel (FA4 where installed). Runs under the
    current `SPARSE_EVAL_FLASH` mode and records which FlexAttention backend each case used."""
    cases = CHECK_CASES[:2] + CHECK_CASES[3:6] if quick else CHECK_CASES
    cases = [case for case in cases if not methods or case[0] in methods]
    ok = True
    rows = results.setdefault("check", [])
    seed = 0
    for L in lengths:
        for name, kwargs in cases:
            for compression in (1.0, 4.0):
                seed += 1
                q, k, v = qkv(L, hq=8, hkv=2, seed=seed)
                method = get_method(name, compression=compression, backend="flex", **kwargs)
                scaling = D**-0.5
                try:
                    pattern = method.select(q, k, scaling=scaling, layer_idx=0)
                    flex_backend.backend_counts.clear()
                    fast, achieved = run_prefill(method, q, k, v)
                except Exception as error:  # one failing case must not hide the others
                    ok = False
                    message = f"{type(error).__name__}: {str(error)[:500]}"
                    rows.append({"L": L, "method": name, "kwargs": kwargs, "compression": compression,
                                 "flash_mode": flash.mode(), "error": message, "ok": False})  # fmt: skip
                    print(f"check {name} L={L} c={compression} {kwargs}: FAIL {message}", flush=True)
                    continue
                used = dict(flex_backend.backend_counts)
                ref = reference_attention(q.float(), k.float(), v.float(), pattern, scaling)
                err = float((fast.float() - ref).norm() / ref.norm())
                counts_ok = bool(
                    torch.equal(attended_pairs(pattern), dense_mask(pattern).sum((-1, -2)).double())
                )
                good = err < 2e-2 and bool(torch.isfinite(fast).all()) and counts_ok
                ok &= good
                rows.append(
                    {
                        "L": L,
                        "method": name,
                        "kwargs": kwargs,
                        "compression": compression,
                        "flash_mode": flash.mode(),
                        "kernels": used,
                        "achieved": achieved,
                        "rel_err": err,
                        "counts_ok": counts_ok,
                        "ok": good,
                    }
                )
                print(
                    f"check[{flash.mode()}] {name:15s} L={L:5d} c={compression:4.1f} {kwargs} "
                    f"achieved={achieved:6.2f} rel_err={err:.2e} kernels={used or 'dense'} "
                    f"{'ok' if good else 'FAIL'}",
                    flush=True,
                )
    return ok


# ----------------------------------------------------------------------------------------------- prefill
class Clock:
    """Wall-clock budget of the whole run: cells past it are skipped (recorded), not half-measured."""

    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def prefill_table(
    results: dict[str, Any],
    lengths: list[int],
    compressions: list[float],
    methods: list[str],
    backends: list[str],
    clock: Clock,
    save: Any,
) -> None:
    rows = results.setdefault("prefill", [])
    for L in lengths:
        prefill_length(rows, L, compressions, methods, backends, clock, save)
        torch.cuda.empty_cache()


def dense_rows(
    L: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rep: int, notes: dict[str, float]
) -> dict[str, float]:
    """Dense causal kernels on the same inputs: cuDNN SDPA, FA4 (if installed), FlexAttention on Triton
    and on FLASH (if installed). Returns {name: ms} for those that ran."""
    from torch.nn.attention.flex_attention import create_block_mask

    scale = D**-0.5
    times: dict[str, float] = {}
    times["dense_sdpa"] = bench_ms(
        partial(F.scaled_dot_product_attention, q, k, v, is_causal=True, enable_gqa=True, scale=scale), rep
    )
    with flash.forced("auto"):
        fa4 = flash.dense_causal(q, k, v, scale) if flash.usable(q.device) else None
        if fa4 is not None:
            ref = F.scaled_dot_product_attention(
                q, k, v, is_causal=True, enable_gqa=True, scale=scale
            ).float()
            err = float((fa4.float() - ref).norm() / ref.norm())
            print(f"  FA4 dense vs cuDNN SDPA output rel err {err:.2e}", flush=True)
            notes["fa4_rel_err_vs_sdpa"] = err
            times["dense_fa4"] = bench_ms(partial(flash.dense_causal, q, k, v, scale), rep)
            del fa4, ref
    causal = create_block_mask(lambda b, h, qi, ki: qi >= ki, None, None, L, L, device="cuda", _compile=True)
    flex = flex_backend._flex()
    times["dense_flex_triton"] = bench_ms(
        partial(flex, q, k, v, block_mask=causal, enable_gqa=True, scale=scale), rep
    )
    with flash.forced("auto"):
        if flash.flex_flash_usable(q.device):
            fl = flex_backend._flex_flash()
            opts = {"BACKEND": "FLASH"}
            try:
                fl(q, k, v, block_mask=causal, enable_gqa=True, scale=scale, kernel_options=opts)
                times["dense_flex_flash"] = bench_ms(
                    partial(
                        fl, q, k, v, block_mask=causal, enable_gqa=True, scale=scale, kernel_options=opts
                    ),
                    rep,
                )
            except Exception as error:
                print(f"  dense flex FLASH failed: {type(error).__name__}: {str(error)[:300]}", flush=True)
    return times


def prefill_length(
    rows: list[dict[str, Any]],
    L: int,
    compressions: list[float],
    methods: list[str],
    backends: list[str],
    clock: Clock,
    save: Any,
) -> None:
    if clock.left() < 0:
        rows.append({"L": L, "error": "skipped: time budget spent"})
        return
    q, k, v = qkv(L)
    rep = 1000 if L > 65536 else 300
    notes: dict[str, float] = {}
    dense = dense_rows(L, q, k, v, rep, notes)
    sdpa = dense["dense_sdpa"]
    fastest_name = min(dense, key=lambda name: dense[name])
    fastest = dense[fastest_name]
    print(
        f"L={L}: "
        + ", ".join(f"{name} {ms:.2f} ms" for name, ms in dense.items())
        + f"; fastest {fastest_name}",
        flush=True,
    )
    for name, ms in dense.items():
        rows.append({"L": L, "method": name, "ms": ms, "speedup_vs_sdpa": sdpa / ms, **notes})
    save()
    outputs: dict[tuple[str, float], tuple[str, torch.Tensor | None]] = {}
    for backend in backends:
        with flash.forced("auto" if backend == "flash" else "off"):
            if backend == "flash" and not flash.flex_flash_usable(q.device):
                print("  backend flash: FA4 / FLASH not usable here, skipped", flush=True)
                continue
            for name in methods:  # a registered name or name:key=value,... (block_sparse:q_block_size=128)
                spec = MethodSpec.parse(name)
                for c in compressions:
                    row: dict[str, Any] = {"L": L, "method": name, "compression": c, "backend": backend}
                    if clock.left() < 0:
                        rows.append({**row, "error": "skipped: time budget spent"})
                        continue
                    cell, out = prefill_cell(row, spec.build(c, backend="flex"), q, k, v, rep, sdpa, fastest)
                    cell["fastest_dense"] = fastest_name
                    other = outputs.setdefault((name, c), (backend, out))
                    if out is not None and other[1] is not None and other[0] != backend:
                        cell["vs_backend"] = other[
                            0
                        ]  # same pattern, other kernel: must agree to bf16 accuracy
                        cell["rel_err_vs_backend"] = float(
                            (out.float() - other[1].float()).norm() / other[1].float().norm()
                        )
                        print(
                            f"    {backend} vs {other[0]} output rel err {cell['rel_err_vs_backend']:.2e}",
                            flush=True,
                        )
                    rows.append(cell)
                    save()
    outputs.clear()


def prefill_cell(
    row: dict[str, Any], method: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rep: int,
    sdpa: float, fastest: float,
) -> tuple[dict[str, Any], torch.Tensor | None]:  # fmt: skip
    c = row["compression"]
    try:
        t0 = time.perf_counter()
        out, achieved = run_prefill(method, q, k, v)  # compiles on first use of a shape
        torch.cuda.synchronize()
        first = time.perf_counter() - t0
        flex_backend.backend_counts.clear()
        run_prefill(method, q, k, v)
        kernels = dict(flex_backend.backend_counts)
        total = bench_ms(partial(prefill_layers, method, q, k, v), rep)
        layered = bench_ms(partial(prefill_layers, method, q, k, v, LAYERS), rep) / LAYERS
        select = bench_ms(partial(method.select, q, k, scaling=D**-0.5, layer_idx=0), rep // 2)
        select_host = host_ms(partial(method.select, q, k, scaling=D**-0.5, layer_idx=0))
    except Exception as error:  # one configuration (e.g. out of memory) must not cost the others
        message = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        print(f"  [{row['backend']}] {row['method']} c={c:g}: {message}", flush=True)
        torch.cuda.empty_cache()
        return {**row, "error": message}, None
    speedup = fastest / total
    print(
        f"  [{row['backend']:6s}] {row['method']:15s} c={c:4.1f} achieved={achieved:6.2f} {total:8.2f} ms "
        f"(select {select:6.2f}, host {select_host:6.2f}, {LAYERS} back to back {layered:7.2f}/layer) x{speedup:5.2f} vs fastest "
        f"dense = {speedup / c:4.2f} c, "
        f"x{sdpa / total:5.2f} vs cuDNN  kernels={kernels} [first call {first:.1f}s]",
        flush=True,
    )
    return {
        **row,
        "achieved": achieved,
        "ms": total,
        "select_ms": select,
        "select_host_ms": select_host,  # time to queue the selection (host); select_ms includes the GPU
        "ms_per_layer_back_to_back": layered,
        "ratio_to_c_back_to_back": fastest / layered / c,
        "first_call_s": first,
        "kernels": kernels,
        "speedup_vs_fastest": speedup,
        "speedup_vs_sdpa": sdpa / total,
        "ratio_to_c": speedup / c,
        "ratio_to_achieved": speedup / achieved,  # the ideal for the pairs actually computed
        "meets_0_7c": speedup >= 0.7 * c,
    }, out


def tune_flex(results: dict[str, Any], lengths: list[int]) -> None:
    """Dense causal FlexAttention under a few kernel configurations (to pick the sparse backend's)."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    flex = torch.compile(flex_attention)
    variants: list[dict[str, Any] | None] = [
        None,
        {"USE_TMA": True},
        {"BLOCK_M": 128, "BLOCK_N": 128, "num_warps": 8, "num_stages": 2},
        {"BLOCK_M": 128, "BLOCK_N": 128, "num_warps": 8, "num_stages": 2, "USE_TMA": True},
        {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 8, "num_stages": 4},
        {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 3},
    ]
    rows = results.setdefault("tune", [])
    for L in lengths:
        q, k, v = qkv(L, seed=5)
        causal = create_block_mask(
            lambda b, h, qi, ki: qi >= ki, None, None, L, L, device="cuda", _compile=True
        )
        for opts in variants:
            try:
                ms = bench_ms(
                    partial(flex, q, k, v, block_mask=causal, enable_gqa=True, kernel_options=opts), 1000
                )
            except Exception as exc:  # an invalid configuration must not stop the others
                ms = float("nan")
                print(f"  tune {opts}: {type(exc).__name__}: {str(exc)[:200]}")
            rows.append({"L": L, "opts": opts, "ms": ms})
            print(f"tune L={L} {opts}: {ms:.2f} ms", flush=True)


def profile_select(
    results: dict[str, Any], L: int, compression: float, out_dir: Path, methods: list[str]
) -> None:
    """Where the time of one prefill goes (selection vs kernels): CUDA-time table per method to a file."""
    from torch.profiler import ProfilerActivity, profile

    q, k, v = qkv(L, seed=3)
    lines = []
    for name in methods:
        method = MethodSpec.parse(name).build(compression, backend="flex")
        run_prefill(method, q, k, v)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            run_prefill(method, q, k, v)
            torch.cuda.synchronize()
        table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=30)
        lines.append(f"==== {name} L={L} c={compression} SPARSE_EVAL_FLASH={flash.mode()}\n{table}")
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            method.select(q, k, scaling=D**-0.5, layer_idx=0)  # selection alone: host vs GPU time
            torch.cuda.synchronize()
        table = prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=45)
        lines.append(f"==== {name} select only, L={L} c={compression}\n{table}")
    path = out_dir / f"profile_{L}.txt"
    path.write_text("\n".join(lines))
    results.setdefault("profile_files", []).append(path.name)


# ----------------------------------------------------------------------------------------------- part 2
def kv_table(results: dict[str, Any], L: int, compressions: list[float]) -> None:
    """KV-cache bytes kept by SnapKV / Ada-SnapKV after a prefill of L tokens (one layer, bf16)."""
    rows = results.setdefault("kv", [])
    q, k, v = qkv(L, seed=11)
    dense_bytes = 2 * HKV * L * D * 2
    for name in ("snapkv", "ada_snapkv"):
        for c in compressions:
            method = get_method(name, compression=c)
            report = CompressionReport()
            idx = method.select_kv(q, k, v, layer_idx=0, scaling=D**-0.5, stats=report.layer(0, "kv"))
            torch.cuda.synchronize()
            fresh = CompressionReport().layer(0, "kv")
            ms = bench_ms(partial(method.select_kv, q, k, v, layer_idx=0, scaling=D**-0.5, stats=fresh), 300)
            achieved = report.achieved_compression("kv")
            kept_bytes = dense_bytes / achieved
            padded_bytes = 2 * HKV * idx.shape[-1] * D * 2 if idx is not None else dense_bytes
            rows.append(
                {
                    "L": L,
                    "method": name,
                    "compression": c,
                    "achieved": achieved,
                    "dense_bytes": dense_bytes,
                    "kept_bytes": kept_bytes,
                    "stored_bytes": padded_bytes,
                    "select_ms": ms,
                }
            )
            print(
                f"  {name:11s} c={c:4.1f} achieved={achieved:6.2f} kept {kept_bytes / 2**20:7.1f} MiB "
                f"stored {padded_bytes / 2**20:7.1f} MiB of {dense_bytes / 2**20:7.1f} MiB; select {ms:.2f} ms",
                flush=True,
            )


# ----------------------------------------------------------------------------------------------- e2e
def e2e_table(results: dict[str, Any], L: int, layers: int, compression: float, methods: list[str]) -> None:
    """Time to first token of a Qwen2.5-7B-shaped model (random weights, `layers` layers) per method."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    import sparse_eval

    cfg = Qwen2Config(
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=layers,
        num_attention_heads=28,
        num_key_value_heads=4,
        max_position_embeddings=max(L, 32768),
        rope_theta=1_000_000.0,
        tie_word_embeddings=False,
    )
    with torch.device("cuda"):
        model = Qwen2ForCausalLM._from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa").eval()
    ids = torch.randint(0, cfg.vocab_size, (1, L), device="cuda")

    def ttft() -> float:
        times = []
        for i in range(4):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.no_grad():
                model(input_ids=ids, logits_to_keep=1)
            torch.cuda.synchronize()
            if i:  # the first call compiles / warms up
                times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1000

    rows = results.setdefault("e2e", [])
    dense = ttft()
    rows.append({"L": L, "layers": layers, "method": "dense_sdpa", "ms": dense})
    print(f"e2e Qwen2.5-7B-shaped, {layers} layers, L={L}: dense {dense:.1f} ms", flush=True)
    for name in methods:
        with sparse_eval.apply(model, name, compression=compression) as session:
            ms = ttft()
        achieved = session.report.achieved_compression(
            "prefill" if name in PREFILL_METHODS else (session.report.phases() or ["prefill"])[0]
        )
        rows.append(
            {
                "L": L,
                "layers": layers,
                "method": name,
                "compression": compression,
                "achieved": achieved,
                "ms": ms,
                "speedup": dense / ms,
            }
        )
        print(
            f"  {name:15s} c={compression:4.1f} achieved={achieved:6.2f} {ms:8.1f} ms  x{dense / ms:5.2f}",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="flex backend vs reference on small shapes")
    parser.add_argument("--check-lengths", nargs="*", type=int, default=[1000, 4096])
    parser.add_argument("--check-quick", action="store_true", help="check 5 of the 8 cases (fewer compiles)")
    parser.add_argument("--check-methods", nargs="*", default=[], help="check only these methods' cases")
    parser.add_argument("--lengths", nargs="*", default=[], help="prefill lengths, e.g. 32k 128k")
    parser.add_argument("--compressions", nargs="*", type=float, default=[5.0, 10.0, 20.0])
    parser.add_argument("--methods", nargs="*", default=list(PREFILL_METHODS))
    parser.add_argument(
        "--backends", nargs="*", default=["flash", "triton"], choices=["flash", "triton"],
        help="FlexAttention backends for the prefill rows (flash: FA4, where installed)",
    )  # fmt: skip
    parser.add_argument(
        "--time-budget",
        type=float,
        default=1e9,
        help="seconds; prefill cells, --profile and --check start only within it",
    )
    parser.add_argument("--kv", default="", help="SnapKV / Ada-SnapKV prefill length, e.g. 128k")
    parser.add_argument("--e2e", default="", help="end-to-end TTFT length, e.g. 128k")
    parser.add_argument("--e2e-layers", type=int, default=4)
    parser.add_argument("--e2e-compression", type=float, default=10.0)
    parser.add_argument("--e2e-methods", nargs="*", default=[*PREFILL_METHODS])
    parser.add_argument("--tune", nargs="*", default=[], help="time dense flex kernel configs at lengths")
    parser.add_argument("--profile", nargs="*", default=[], help="profile one prefill per method at lengths")
    parser.add_argument("--profile-compression", type=float, default=10.0)
    parser.add_argument("--out", default=os.environ.get("OUT", "bench_out"))
    args = parser.parse_args()
    if not gpu_available():
        print("bench_attention.py needs a CUDA GPU", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "argv": sys.argv[1:],
        "flash_attn_4": flash_version(),
    }
    path = out_dir / "bench_attention.json"
    clock = Clock(args.time_budget)

    def save() -> None:
        path.write_text(json.dumps(results, indent=1))

    sections = []
    if args.lengths:
        lengths = [parse_length(x) for x in args.lengths]
        prefill = (lengths, args.compressions, args.methods, args.backends, clock, save)
        sections.append(("prefill", lambda: prefill_table(results, *prefill)))
    for length in args.profile:
        profile = (parse_length(length), args.profile_compression, out_dir, args.methods)
        sections.append(("profile", lambda profile=profile: profile_select(results, *profile)))
    if args.check:  # after the tables: with --time-budget, a short run keeps the tables first
        checks = (tuple(args.check_lengths), args.check_quick, tuple(args.check_methods))
        sections.append(("check", lambda: check(results, *checks)))
    if args.kv:
        sections.append(("kv", lambda: kv_table(results, parse_length(args.kv), args.compressions)))
    if args.e2e:
        e2e = (parse_length(args.e2e), args.e2e_layers, args.e2e_compression, args.e2e_methods)
        sections.append(("e2e", lambda: e2e_table(results, *e2e)))
    if args.tune:
        sections.append(("tune", lambda: tune_flex(results, [parse_length(x) for x in args.tune])))
    ok = True
    for label, run in sections:  # one failing section must not cost the others (device time is scarce)
        if label in ("profile", "check") and clock.left() < 0:
            print(f"{label}: skipped, time budget spent", flush=True)
            results.setdefault("skipped", []).append(label)
            continue
        try:
            ok &= run() is not False
        except Exception:
            ok = False
            results.setdefault("errors", {})[label] = traceback.format_exc()
            traceback.print_exc()
        path.write_text(json.dumps(results, indent=1))
    print(f"wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
