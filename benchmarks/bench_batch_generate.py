"""Seconds per prompt of `sparse_eval.generate` at batch 1 vs one batch, on the reference model's shape (GPU).

Why: the sparse grid's device time is set by this, and the batched path (rows' attention one by one,
projections and MLPs together) adds host work a single prompt does not have. The weights are random;
timing depends on the shape, the method and the number of new tokens (fixed here: eos is never hit), not on
the weights. `--spread N` makes the prompts N tokens apart (padding in the batch); `--profile METHOD`
prints a torch profiler table of one batch.

    python benchmarks/bench_batch_generate.py --length 4096 --batch 4 --new 32 --methods vertical_slash,quest
    python benchmarks/bench_batch_generate.py --c 20 --spread 13 --methods snapkv,ada_snapkv --profile ada_snapkv \
        --out benchmarks/results/bench_batch_generate.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

import sparse_eval

SHAPE = dict(
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    vocab_size=49152,
    max_position_embeddings=8192,
    rope_theta=100000.0,
    tie_word_embeddings=True,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--length", type=int, default=4096)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--new", type=int, default=32)
    p.add_argument("--c", type=float, default=5)
    p.add_argument("--methods", default="vertical_slash,block_sparse,flexprefill,quest,snapkv,ada_snapkv")
    p.add_argument("--device", default="cuda")
    p.add_argument("--spread", type=int, default=0, help="prompt i is i * spread tokens shorter")
    p.add_argument("--profile", default="", help="a method to profile in one batch (3 new tokens)")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    args = p.parse_args()
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SHAPE, attn_implementation="sdpa")).to(args.device, torch.bfloat16)
    model.eval()
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    lengths = [args.length - i * args.spread for i in range(args.batch)]
    prompts = [torch.randint(0, SHAPE["vocab_size"], (n,)).tolist() for n in lengths]

    def run(method: str, batch: bool, new_tokens: int = args.new) -> float:
        sync()
        t = time.time()
        if batch:
            sparse_eval.generate(
                model,
                prompts,
                method,
                compression=args.c,
                backend="reference",
                max_new_tokens=new_tokens,
                eos_token_id=-1,
            )
        else:
            for prompt in prompts:
                sparse_eval.generate(
                    model,
                    prompt,
                    method,
                    compression=args.c,
                    backend="reference",
                    max_new_tokens=new_tokens,
                    eos_token_id=-1,
                )
        sync()
        return (time.time() - t) / len(prompts)

    run("vertical_slash", False)  # warm-up
    out = {}
    for method in args.methods.split(","):
        one, many = run(method, False), run(method, True)
        out[method] = {
            "batch1_s_per_prompt": round(one, 3),
            f"batch{args.batch}_s_per_prompt": round(many, 3),
        }
        print(
            f"{method:15s} batch 1: {one:.2f} s/prompt   batch {args.batch}: {many:.2f} s/prompt", flush=True
        )
    report = json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": out})
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
        with profile(activities=activities) as prof:
            run(args.profile, True, new_tokens=3)
        print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
