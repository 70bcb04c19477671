"""Sparse generation time, one prompt vs a batch of four, for the KV methods (and Quest) on a random model of
SmolLM2-135M's shape: finds host-side costs that batching adds (e.g. a kernel that re-plans per call).

    python benchmarks/bench_kv_decode_batch.py --device cuda --out benchmarks/results/bench_kv_decode_batch.json
    python benchmarks/bench_kv_decode_batch.py --profile ada_snapkv   # + a torch profiler table of one batch
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

import sparse_eval

SMOLLM2_SHAPE = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                     num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--length", type=int, default=4096)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--methods", default="snapkv,ada_snapkv,quest")
    p.add_argument("--compressions", default="20,5")
    p.add_argument("--profile", default="", help="a method to profile in a batch of four (3 new tokens)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_SHAPE)).to(args.device, dtype).eval()
    prompts = [torch.randint(0, 49152, (args.length - 13 * i,), device=args.device) for i in range(4)]

    def seconds(method: str, compression: float, batch: int, new_tokens: int) -> float:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        sparse_eval.generate(model, prompts[:batch], method, compression=compression, batch_size=batch,
                             max_new_tokens=new_tokens, backend="reference")  # fmt: skip
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    seconds("snapkv", 5, 4, 2)  # warm-up
    rows = []
    print(f"{'method':<12} {'c':>4} {'batch 1 (s)':>12} {'batch 4 (s)':>12} {'4 x batch 1 / batch 4':>22}")
    for method in args.methods.split(","):
        for compression in map(float, args.compressions.split(",")):
            one, four = (
                seconds(method, compression, 1, args.new_tokens),
                seconds(method, compression, 4, args.new_tokens),
            )
            rows.append({"method": method, "compression": compression, "batch1_s": one, "batch4_s": four})
            print(
                f"{method:<12} {compression:>4g} {one:>12.2f} {four:>12.2f} {4 * one / four:>22.2f}",
                flush=True,
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "device": args.device,
            "length": args.length,
            "new_tokens": args.new_tokens,
            "torch": torch.__version__,
        }
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + (
            [ProfilerActivity.CUDA] if args.device.startswith("cuda") else []
        )
        with profile(activities=activities) as prof:
            seconds(args.profile, float(args.compressions.split(",")[0]), 4, 3)
        print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
