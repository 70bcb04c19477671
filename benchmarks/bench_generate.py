"""Seconds per sample of each story task at 8k, 32k, 128k and 1M tokens (default tokenizer, 1 worker).

Each measurement generates one sample (a fresh index each run, so nothing is cached between runs
except the tokenizer and filler bank, which a real run also reuses). Prints a table, writes JSON.

    python benchmarks/bench_generate.py --out bench_generate.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time

from longtasks.generate import generate_samples
from longtasks.lengths import format_length, parse_lengths
from longtasks.tasks import list_tasks
from longtasks.tokenizer import load_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lengths", default="8k,32k,128k,1M")
    parser.add_argument("--tasks", default=",".join(list_tasks()))
    parser.add_argument("--runs", type=int, default=5, help="runs per cell (at 1M: max(2, runs // 2))")
    parser.add_argument("--out", default="bench_generate.json")
    parser.add_argument("--chat", action="store_true", help="count the chat template too")
    parser.add_argument(
        "--tokenizers-backend",
        action="store_true",
        help="count with the Rust `tokenizers` library instead of tiktoken (same vocabulary, slower)",
    )
    args = parser.parse_args()

    tokenizer = load_tokenizer()
    if args.tokenizers_backend:
        tokenizer = dataclasses.replace(tokenizer, fast_encoding=None)
    generate_samples("story_retrieval", 8192, 1, tokenizer=tokenizer)  # warm-up: filler bank, templates
    results = []
    for task in args.tasks.split(","):
        for length in parse_lengths(args.lengths):
            runs = max(2, args.runs // 2) if length >= 1 << 20 else args.runs
            times = []
            for index in range(runs):
                start = time.perf_counter()
                (sample,) = generate_samples(
                    task, length, 1, start=1000 + index, tokenizer=tokenizer, chat=args.chat
                )
                times.append(time.perf_counter() - start)
                assert sample.input_tokens == length
            results.append({"task": task, "length": length, "runs": runs, "median_s": statistics.median(times),
                            "min_s": min(times), "max_s": max(times)})  # fmt: skip
            r = results[-1]
            print(f"{task:18s} {format_length(length):>5s}  median {r['median_s']:.3f} s/sample "
                  f"(min {r['min_s']:.3f}, max {r['max_s']:.3f}, n={runs})", flush=True)  # fmt: skip
    meta = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "tokenizer": tokenizer.revision,
    }
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=2)
    print(f"\n| task | {' | '.join(format_length(n) for n in parse_lengths(args.lengths))} |")
    print("|---|" + "---|" * len(parse_lengths(args.lengths)))
    for task in args.tasks.split(","):
        cells = [f"{r['median_s']:.3f}" for r in results if r["task"] == task]
        print(f"| {task} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
