"""vertical_slash's attention as one FA4 call over per-query-tile key lists, against the two FlexAttention
passes it replaces, side by side in one process (`sparse_eval.backends.gathered`).

Per length and compression: the attention alone both ways, and the one-call form also as it was before it
stopped reading values back (`gathered.host_reads`: the longest list and the column count); the key-list
build alone (lengths, a host read, the table); the whole prefill (selection included) the three ways, with
its host time to queue and its count of host syncs; the one-call attention with a page-table cap of 1 GiB
(more row chunks) and 16 GiB (one table) instead of 4 GiB; the relative difference of the outputs, and the
error of each against the float32 masked reference at L = 1000 (a ragged last tile). 28/4 heads, d 128,
bf16. Needs a CUDA GPU with `longtasks[flash]`.

    python benchmarks/probe_gathered_keys.py --out $OUT   # results/probe_gathered_keys_h200.json
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_attention import bench_ms, host_ms, parse_length, prefill_layers, qkv

from sparse_eval.backends import flex, gathered, run_pattern
from sparse_eval.backends.flash import dense_causal
from sparse_eval.backends.reference import reference_attention
from sparse_eval.fidelity.runner import MethodSpec

D = 128


def build_lists(pattern, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """The one-call form's preparation alone: lengths, the host read, one full page table."""
    from sparse_eval.kernels import key_lists

    lengths, n_before, missing = gathered.key_list_lengths(pattern)
    width, _ = torch.stack([lengths.max(), missing.to(torch.int32)]).tolist()
    table = torch.empty(lengths.numel(), width, dtype=torch.int32, device=lengths.device)
    _, _, base, stride = gathered._pages(key, value, pattern.blocks.shape[1])
    key_lists.fill_key_lists(
        table, lengths, 0, pattern.columns, n_before, pattern.blocks, base, stride, pattern.seq_len,
        pattern.q_block, pattern.kv_block,
    )  # fmt: skip
    return table


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def with_one_call(enabled: bool, fn, *args):
    gathered.enabled = enabled
    try:
        return fn(*args)
    finally:
        gathered.enabled = True


def count_syncs(fn) -> int:
    """Host-device synchronisations inside one call (torch's sync debug mode, as warnings)."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(w.message) for w in caught)


def with_host_reads(fn, *args):
    """The one-call form that reads the longest list and the column count back (before: one stop per call)."""
    gathered.host_reads = True
    try:
        return fn(*args)
    finally:
        gathered.host_reads = False


def check_small(rows: list) -> None:
    """Both forms against the float32 reference at L = 1000 (ragged last tile), c = 3 and 8, then a batch of
    two whose K / V are sequence-major (B, L, H, D) in memory, as a model's projections leave them."""
    g = torch.Generator(device="cuda").manual_seed(0)
    single = (
        torch.randn(1, 28, 1000, D, generator=g, device="cuda", dtype=torch.bfloat16),
        *(torch.randn(1, 4, 1000, D, generator=g, device="cuda", dtype=torch.bfloat16) for _ in "kv"),
    )
    batch = (
        torch.randn(2, 1000, 28, D, generator=g, device="cuda", dtype=torch.bfloat16).transpose(1, 2),
        *(torch.randn(2, 1000, 4, D, generator=g, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
          for _ in "kv"),
    )  # fmt: skip
    for c, (q, k, v) in ((3.0, single), (8.0, single), (5.0, batch)):
        m = MethodSpec.parse("vertical_slash").build(c, backend="flex")
        pat = m.select(q, k, scaling=D**-0.5, layer_idx=0)
        ref = reference_attention(q.float(), k.float(), v.float(), pat, D**-0.5)
        flex.backend_counts.clear()
        one = with_one_call(True, run_pattern, q, k, v, pat, D**-0.5, "flex")
        read = with_host_reads(run_pattern, q, k, v, pat, D**-0.5, "flex")
        two = with_one_call(False, run_pattern, q, k, v, pat, D**-0.5, "flex")
        row = {"check_L": 1000, "batch": q.shape[0], "c": c, "one_call_err": relative(one, ref),
               "one_call_host_reads_err": relative(read, ref), "two_pass_err": relative(two, ref),
               "kernels": dict(flex.backend_counts)}  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", nargs="*", default=["128k", "32k"])
    parser.add_argument("--compressions", nargs="*", type=float, default=[5.0, 10.0, 20.0])
    parser.add_argument("--out", default="bench_out")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("probe_gathered_keys.py needs a CUDA GPU", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    res: dict[str, object] = {"torch": torch.__version__, "rows": rows}
    check_small(rows)
    for L in (parse_length(x) for x in args.lengths):
        q, k, v = qkv(L)
        scaling = D**-0.5
        fa4 = bench_ms(partial(dense_causal, q, k, v, scaling), 200)
        res[f"fa4_ms_{L}"] = fa4
        for c in args.compressions:
            m = MethodSpec.parse("vertical_slash").build(c, backend="flex")
            prefill_layers(m, q, k, v)
            pat = m.select(q, k, scaling=scaling, layer_idx=0)
            flex.backend_counts.clear()
            one = with_one_call(True, run_pattern, q, k, v, pat, scaling, "flex")
            kernels = dict(flex.backend_counts)
            two = with_one_call(False, run_pattern, q, k, v, pat, scaling, "flex")
            attn = partial(run_pattern, q, k, v, pat, scaling, "flex")
            prefill = partial(prefill_layers, m, q, k, v)
            row: dict[str, object] = {
                "L": L,
                "c": c,
                "kernels_one_call": kernels,
                "rel_diff": relative(one, two),
            }
            del one, two
            row["attn_one_call"] = with_one_call(True, bench_ms, attn, 300)
            row["attn_one_call_host_reads"] = with_host_reads(bench_ms, attn, 300)
            row["attn_two_pass"] = with_one_call(False, bench_ms, attn, 300)
            row["lists"] = bench_ms(partial(build_lists, pat, k, v), 100)
            row["prefill_one_call"] = with_one_call(True, bench_ms, prefill, 300)
            row["prefill_one_call_host_reads"] = with_host_reads(bench_ms, prefill, 300)
            row["prefill_two_pass"] = with_one_call(False, bench_ms, prefill, 300)
            row["host_syncs_one_call"] = count_syncs(prefill)
            row["host_syncs_one_call_host_reads"] = with_host_reads(count_syncs, prefill)
            row["queue_prefill_one_call"] = host_ms(prefill)  # host time to queue it (no host read: < GPU)
            row["queue_prefill_one_call_host_reads"] = with_host_reads(host_ms, prefill)
            cap = gathered.TABLE_BYTES
            for gib in (1, 16):  # page-table cap: more row chunks, or one table (no output concatenation)
                gathered.TABLE_BYTES = gib << 30
                row[f"attn_one_call_{gib}GiB"] = bench_ms(attn, 300)
            gathered.TABLE_BYTES = cap
            row["ratio_to_c_one_call"] = fa4 / row["prefill_one_call"] / c
            row["ratio_to_c_two_pass"] = fa4 / row["prefill_two_pass"] / c
            print(json.dumps(row), flush=True)
            rows.append(row)
            (out_dir / "probe_gathered_keys.json").write_text(json.dumps(res, indent=1))
        del q, k, v
        torch.cuda.empty_cache()
    (out_dir / "probe_gathered_keys.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
