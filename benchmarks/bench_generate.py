"""Seconds per sample of every task at 8k, 32k, 128k and 1M tokens (1 worker), optionally side by side with
another checkout of longtasks (e.g. the first release) in the same run.

Each cell runs in a fresh process per source: one warm-up sample (tokenizer, filler bank, templates), then
`--runs` samples with fresh indices, timed one by one. With `--baseline-src DIR` (a checkout whose
`longtasks/` package is put first on PYTHONPATH) both sources keep a process open for the cell and make
their samples in turn, the same index one after the other (which goes first alternates), so that both see
the same machine load; the table gives each side's median CPU time and the median of the per-index ratios
baseline/ours. Prints a table and writes JSON.

    python benchmarks/bench_generate.py --out benchmarks/results/bench_generate.json
    git worktree add /tmp/release1 985fbd5
    python benchmarks/bench_generate.py --tasks story_retrieval,story_multihop --baseline-src /tmp/release1
    python benchmarks/bench_generate.py --tokenizer /path/to/Qwen2.5-7B-Instruct  # a user's HF tokenizer
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, time
from longtasks.generation import generate_samples
from longtasks.tokenizer import load_tokenizer
task, length, tokenizer, chat, knobs = json.loads(sys.argv[1])
tok = load_tokenizer(tokenizer)
generate_samples(task, 8192, 1, start=999, tokenizer=tok, chat=chat)  # warm-up: tokenizer, banks, templates
print("ready", flush=True)
for line in sys.stdin:  # one sample index a line; answers [wall s, cpu s]
    start, start_cpu = time.perf_counter(), time.process_time()
    (sample,) = generate_samples(task, length, 1, start=int(line), tokenizer=tok, chat=chat, knobs=knobs)
    times = [time.perf_counter() - start, time.process_time() - start_cpu]
    assert sample.input_tokens == length
    print(json.dumps(times), flush=True)
"""

LARGE_KNOBS = {"ruler_cwe": {"rare_word_frequency": 20, "common_word_frequency": 200}}
"""Knobs for lengths beyond a task's default capacity (CWE's vocabulary fills ~190k tokens at frequency 3)."""


def measure(
    sources: dict[str, Path], task: str, length: int, runs: int, tokenizer: str | None, chat: bool, first: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and CPU seconds of each run per source (CPU time is what to compare on a machine shared with
    other jobs). The sources make the same sample index in turn; `first` picks who starts."""
    knobs = LARGE_KNOBS.get(task) if length > 131072 else None
    args = json.dumps([task, length, tokenizer, chat, knobs])
    with contextlib.ExitStack() as stack:
        children = {}
        for who, src in sources.items():
            env = {**os.environ, "PYTHONPATH": str(src), "TOKENIZERS_PARALLELISM": "false"}
            errors = stack.enter_context(tempfile.TemporaryFile(mode="w+"))
            # -P: without it `python -c` puts the working directory first on sys.path, and a run from a
            # checkout's root would import that checkout instead of `src`.
            child = subprocess.Popen(
                [sys.executable, "-P", "-c", CHILD, args], env=env, text=True,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
            )  # fmt: skip
            stack.callback(child.wait)
            stack.callback(child.stdin.close)  # type: ignore[union-attr]
            children[who] = (child, errors)
        for who in sources:
            _answer(children[who], f"{task} @ {length} in {sources[who]}")
        timed: dict[str, tuple[list[float], list[float]]] = {who: ([], []) for who in sources}
        order = list(sources)
        for index in range(runs):
            for who in order if (index + first) % 2 == 0 else order[::-1]:
                child, _ = children[who]
                child.stdin.write(f"{1000 + index}\n")  # type: ignore[union-attr]
                child.stdin.flush()  # type: ignore[union-attr]
                wall, cpu = json.loads(_answer(children[who], f"{task} @ {length} in {sources[who]}"))
                timed[who][0].append(wall)
                timed[who][1].append(cpu)
        return timed


def _answer(child: tuple[subprocess.Popen, IO[str]], what: str) -> str:
    """The child's next line; its error output if it stopped instead."""
    process, errors = child
    line = process.stdout.readline()  # type: ignore[union-attr]
    if not line:
        process.wait()
        errors.seek(0)
        raise RuntimeError(f"{what} failed:\n{errors.read()[-2000:]}")
    return line.strip()


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from longtasks.lengths import format_length, parse_lengths
    from longtasks.registry import list_tasks

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", default="8k,32k,128k,1M")
    parser.add_argument("--tasks", default=",".join(list_tasks()))
    parser.add_argument("--runs", type=int, default=5, help="runs per cell (at 1M: max(2, runs // 2))")
    parser.add_argument("--tokenizer", default=None, help="a tokenizer name or folder (default: qwen2.5)")
    parser.add_argument("--chat", action="store_true", help="count the chat template too")
    parser.add_argument("--baseline-src", type=Path, default=None, help="another checkout to time alongside")
    parser.add_argument(
        "--src", type=Path, default=ROOT, help="the checkout measured as 'ours' (default: this one)"
    )
    parser.add_argument("--out", default="bench_generate.json")
    args = parser.parse_args()

    sources = {"ours": args.src.resolve()} | (
        {"baseline": args.baseline_src.resolve()} if args.baseline_src else {}
    )
    results = []
    for task in args.tasks.split(","):
        for length in parse_lengths(args.lengths):
            runs = max(2, args.runs // 2) if length >= 1 << 20 else args.runs
            row: dict = {"task": task, "length": length, "runs": runs}
            timed = measure(sources, task, length, runs, args.tokenizer, args.chat, len(results))
            for who, (times, cpu) in timed.items():
                row[who] = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                            "cpu_median_s": statistics.median(cpu)}  # fmt: skip
            results.append(row)
            ours = row["ours"]
            line = f"{task:16s} {format_length(length):>5s}  ours {ours['median_s']:.3f} s (cpu {ours['cpu_median_s']:.3f})"
            if "baseline" in row:
                base = row["baseline"]
                paired = statistics.median(
                    b / o for b, o in zip(timed["baseline"][1], timed["ours"][1], strict=True)
                )
                row["cpu_ratio_baseline_over_ours"] = paired
                line += f"  baseline {base['median_s']:.3f} s (cpu {base['cpu_median_s']:.3f})  cpu baseline/ours {paired:.2f}"
            print(line, flush=True)
    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "tokenizer": args.tokenizer or "qwen2.5",
        "chat": args.chat,
        "src": str(args.src),
        "baseline_src": str(args.baseline_src) if args.baseline_src else None,
        "large_knobs": LARGE_KNOBS,
    }
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=2)
    lengths = parse_lengths(args.lengths)
    print(f"\n| task | {' | '.join(format_length(n) for n in lengths)} |")
    print("|---|" + "---:|" * len(lengths))
    for task in args.tasks.split(","):
        cells = []
        for r in (r for r in results if r["task"] == task):
            cell = f"{r['ours']['median_s']:.3f}"
            if "baseline" in r:
                cell = (
                    f"{r['ours']['cpu_median_s']:.3f} ({r['baseline']['cpu_median_s']:.3f}) cpu, "
                    f"{1 / r['cpu_ratio_baseline_over_ours']:.2f}x"
                )
            cells.append(cell)
        print(f"| {task} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
