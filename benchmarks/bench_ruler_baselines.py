"""Trivial baselines of the RULER tasks: what a reader that does not do the task scores, per length.

Each reader answers from the prompt text alone with a shortcut, and is scored by the package's own scorer:

- ruler_niah: the values of the context's first k key-value sentences (a reader that ignores the keys);
- ruler_vt: every variable of the context; the one variable assigned the asked value (found by string
  search, no chain followed);
- ruler_cwe: every distinct word of the list; the most common words of the list's first tenth (a reader that
  stops early, which is what a pattern that drops most of the list approaches).

    python benchmarks/bench_ruler_baselines.py --lengths 4k,16k,32k,128k --samples 20 \
        --out benchmarks/results/bench_ruler_baselines.json
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from longtasks.generation import generate_samples
from longtasks.lengths import format_length, parse_lengths
from longtasks.sample import Sample
from longtasks.scoring import score_prediction
from longtasks.tokenizer import load_tokenizer

_NIAH_VALUE = re.compile(r"The value for key \S+ is: (\S+)\.")
_VT_NAME = re.compile(r"VAR ([A-Z]+) =")
_CWE_ITEM = re.compile(r"^\d+\. (\S+)$", re.MULTILINE)


def _context(sample: Sample) -> str:
    return sample.prompt.split("<context>", 1)[1].split("</context>", 1)[0]


def niah_first_values(sample: Sample) -> list[str]:
    return _NIAH_VALUE.findall(_context(sample))[: len(sample.answer)]


def vt_every_variable(sample: Sample) -> list[str]:
    return sorted(set(_VT_NAME.findall(_context(sample))))


def vt_assigned_the_value(sample: Sample) -> list[str]:
    return re.findall(rf"VAR ([A-Z]+) = {sample.meta['target_value']}\.", _context(sample))


def cwe_every_word(sample: Sample) -> list[str]:
    return sorted(set(_CWE_ITEM.findall(_context(sample))))


def cwe_first_tenth(sample: Sample) -> list[str]:
    words = _CWE_ITEM.findall(_context(sample))
    return [word for word, _ in Counter(words[: max(1, len(words) // 10)]).most_common(len(sample.answer))]


READERS: dict[str, dict[str, Callable[[Sample], list[str]]]] = {
    "ruler_niah": {"first k values": niah_first_values},
    "ruler_vt": {"every variable": vt_every_variable, "variable assigned the value": vt_assigned_the_value},
    "ruler_cwe": {"every distinct word": cwe_every_word, "most common in the first tenth": cwe_first_tenth},
}


def measure(lengths: list[int], samples: int, seed: int) -> dict[str, dict[str, dict[str, float]]]:
    """Mean score of every reader, by task and length."""
    tokenizer = load_tokenizer()
    results: dict[str, dict[str, dict[str, float]]] = {}
    for task, readers in READERS.items():
        for length in lengths:
            built = generate_samples(task, length, samples, seed=seed, tokenizer=tokenizer)
            for name, reader in readers.items():
                scores = [
                    score_prediction(
                        s.answer_kind, "<answer>" + "\n".join(reader(s)) + "</answer>", s.answer
                    )["score"]
                    for s in built
                ]
                results.setdefault(task, {}).setdefault(name, {})[format_length(length)] = statistics.fmean(
                    scores
                )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", default="4k,16k,32k,128k", help="comma-separated, e.g. 4k,16k")
    parser.add_argument("--samples", type=int, default=20, help="samples per task and length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench_ruler_baselines.json"))
    args = parser.parse_args()
    if args.samples < 1:
        parser.error(f"--samples must be at least 1, got {args.samples}")
    try:
        lengths = parse_lengths(args.lengths)
    except ValueError as error:
        parser.error(f"--lengths {args.lengths!r}: {error}")
    if args.out.parent and not args.out.parent.is_dir():
        parser.error(f"--out {str(args.out)!r}: its folder does not exist")
    results = measure(lengths, args.samples, args.seed)
    header = [format_length(n) for n in lengths]
    print(f"| task | reader | {' | '.join(header)} |")
    print(f"|---|---|{'---:|' * len(header)}")
    for task, readers in results.items():
        for name, by_length in readers.items():
            print(f"| {task} | {name} | {' | '.join(f'{by_length[h]:.3f}' for h in header)} |")
    args.out.write_text(
        json.dumps({"samples": args.samples, "seed": args.seed, "results": results}, indent=2)
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
