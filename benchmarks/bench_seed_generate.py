"""Side by side: the seed paper's story generators vs ours, seconds per sample and length / target.

The seed (PiotrNawrot/sparse-frontier) is not a dependency: point `--seed-repo` at a checkout of it. Its
task classes run unmodified with its own `Tokenizer` wrapper, loaded from a folder holding our offline
Qwen2.5 tokenizer (or from `--tokenizer DIR`, a user's Hugging Face tokenizer folder, which ours then loads
the way `--tokenizer DIR` does on the CLI). One seed sample = what its `prepare_task` does per sample (build
the sample, its length check, `to_dict`); ours = `generate_samples(task, length, 1, start=i)`. Seed and ours
alternate on the same index (order flipped every round), after one warm-up each.

    python benchmarks/bench_seed_generate.py --seed-repo /path/to/sparse-frontier --out bench_seed.json
    python benchmarks/bench_seed_generate.py --seed-repo ... --tokenizer /path/to/qwen-tokenizer-folder
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from longtasks.generation import generate_samples
from longtasks.lengths import format_length
from longtasks.tokenizer import load_tokenizer

# The seed's own settings: configs/task/story_*.yaml, and default.yaml's output budget and random seed.
SEED_TASKS = {
    "story_retrieval": ("RetrievalTask", "retrieval", {"num_queries": 16}),
    "story_multihop": ("MultiHopTask", "multihop", {}),
    "story_filtering": ("FilteringTask", "filtering", {"chapters_in_question": 3}),
}
SEED_OUTPUT_TOKENS = 1024
SEED_RANDOM_SEED = 43


def seed_runner(seed_repo: str, folder: str | None) -> Any:
    """A function (task, length, i) -> (seconds, length / target) running the seed's generator."""
    sys.path.insert(0, seed_repo)
    import importlib

    from sparse_frontier.modelling.tokenizer import Tokenizer

    if folder is None:
        folder = tempfile.mkdtemp(prefix="qwen25-")
        load_tokenizer().hf.save_pretrained(folder)
    seed_tokenizer = Tokenizer(folder, device="cpu")

    def run(task: str, length: int, i: int) -> tuple[float, float]:
        class_name, module, args = SEED_TASKS[task]
        cls = getattr(importlib.import_module(f"sparse_frontier.tasks.story.{module}"), class_name)
        start = time.perf_counter()
        generator = cls(
            num_samples=1,
            max_input_tokens=length,
            max_output_tokens=SEED_OUTPUT_TOKENS,
            tokenizer=seed_tokenizer,
            random_seed=SEED_RANDOM_SEED + i,  # sample 0 of seed 43+i == sample i of its pipeline
            **args,
        )
        text = generator.generate_samples()[0]["input_text"]
        seconds = time.perf_counter() - start
        tokens = len(seed_tokenizer.encode_for_generation(text, return_tensors=False)["input_ids"])
        return seconds, tokens / length

    return run


def ours_runner(folder: str | None) -> Any:
    tokenizer = load_tokenizer(folder)

    def run(task: str, length: int, i: int) -> tuple[float, float]:
        start = time.perf_counter()
        (sample,) = generate_samples(task, length, 1, start=i, tokenizer=tokenizer)
        seconds = time.perf_counter() - start
        assert tokenizer.count_model_input(sample.prompt) == sample.input_tokens == length
        return seconds, sample.input_tokens / length

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed-repo", required=True, help="a checkout of PiotrNawrot/sparse-frontier")
    parser.add_argument("--tokenizer", default=None, help="a Hugging Face tokenizer folder used by both")
    parser.add_argument("--out", default="bench_seed_generate.json")
    args = parser.parse_args()
    os.environ["TOKENIZERS_PARALLELISM"] = "true"  # as the seed's prepare_task sets it
    runners = {"seed": seed_runner(args.seed_repo, args.tokenizer), "ours": ours_runner(args.tokenizer)}
    results = []
    for length, runs in ((32768, 5), (131072, 3)):
        for task in SEED_TASKS:
            times: dict[str, list[float]] = {"seed": [], "ours": []}
            ratios: dict[str, list[float]] = {"seed": [], "ours": []}
            for i in range(runs + 1):  # i == 0 warms up
                for who in ("seed", "ours") if i % 2 == 0 else ("ours", "seed"):
                    seconds, ratio = runners[who](task, length, i)
                    if i:
                        times[who].append(seconds)
                        ratios[who].append(ratio)
            row = {"task": task, "length": length, "runs": runs, "times": times, "length_ratios": ratios}
            row |= {f"{who}_median_s": statistics.median(times[who]) for who in times}
            results.append(row)
            print(
                f"{task:16s} {format_length(length):>5s}  seed {row['seed_median_s']:.3f} s  ours "
                f"{row['ours_median_s']:.3f} s  x{row['seed_median_s'] / row['ours_median_s']:.1f}  seed length/target "
                f"{min(ratios['seed']):.3f}-{max(ratios['seed']):.3f}",
                flush=True,
            )
    with open(args.out, "w") as f:
        json.dump(
            {"tokenizer": args.tokenizer or "qwen2.5 (ours: tiktoken path)", "results": results}, f, indent=2
        )


if __name__ == "__main__":
    main()
