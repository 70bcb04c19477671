"""Story text quality and shortcuts, this tree against another checkout (e.g. the first release), in one run.

For each source a child process (fresh, outside the repository so that its `longtasks` is the one on
PYTHONPATH) generates the four story tasks at every length; this process then measures every prompt the
same way, from its text alone:

- repeated sentences: the share of a story's sentences that repeat an earlier one, sentences repeated
  inside a chapter, and sentences matching a banned collocation (`tests/story/banned.py`);
- trivial baselines (`longtasks.families.story.audit.shortcuts`): the issue's list (question only, the
  last k purchases, every chapter, the k most named items; k chosen on the samples: an upper bound) and
  the surface readers (first name of the asked kind in the chapter, item named just before, chapters
  naming no item, items named once);
- multi-hop: the share of samples whose answer is bought in the question item's chapter;
- inventory at long lengths: answer size in items and in tokens.

    git -C /work/main archive 985fbd5 | tar -x -C /tmp/release1
    python benchmarks/bench_story_text.py --baseline-src /tmp/release1 --out benchmarks/results/bench_story_text.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("story_retrieval", "story_multihop", "story_filtering", "story_inventory")

CHILD = """
import json, sys
from longtasks.generation import generate_samples
from longtasks.tokenizer import load_tokenizer
tasks, lengths, samples, long_lengths, long_samples, out = json.loads(sys.argv[1])
tok = load_tokenizer()
with open(out, "w") as f:
    for task in tasks:
        for length in lengths:
            for s in generate_samples(task, length, samples, seed=0, tokenizer=tok):
                meta = getattr(s, "meta", None) or {}
                chapters = meta.get("evidence_chapters") or getattr(s, "evidence_chapters", None)
                row = {"task": task, "length": length, "prompt": s.prompt, "question": s.question,
                       "answer": s.answer, "answer_kind": s.answer_kind, "evidence_chapters": chapters}
                f.write(json.dumps(row) + "\\n")
    for length in long_lengths:
        for s in generate_samples("story_inventory", length, long_samples, seed=0, tokenizer=tok):
            row = {"task": "story_inventory", "length": length, "long": True, "items": len(s.answer),
                   "answer_tokens": tok.count(", ".join(s.answer))}
            f.write(json.dumps(row) + "\\n")
"""

ISSUE_BASELINES = {
    "story_retrieval": ("question only",),
    "story_multihop": ("question only",),
    "story_filtering": ("every chapter",),
    "story_inventory": ("question only", "last k purchases", "k most named items"),
}


def generate(src: Path, args: argparse.Namespace, out: Path) -> None:
    payload = json.dumps(
        [list(TASKS), args.lengths, args.samples, args.long_lengths, args.long_samples, str(out)]
    )
    env = {**os.environ, "PYTHONPATH": str(src), "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-c", CHILD, payload], env=env, cwd=tempfile.gettempdir(),
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"generation in {src} failed:\n{done.stderr[-3000:]}")


def measure(rows: list[dict]) -> dict:
    """Every measure of one (source, task, length) cell."""
    from longtasks.families.story.audit.shortcuts import baselines
    from longtasks.families.story.audit.text import chapters_of, repeats, sentences_of
    from tests.story.banned import banned_in

    task = rows[0]["task"]
    measured = [repeats(row["prompt"]) for row in rows]
    banned = [
        sum(bool(banned_in(s)) for c in chapters_of(row["prompt"]) for s in sentences_of(c)) for row in rows
    ]
    scores = baselines(task, rows)
    issue = {name: score for name, score in scores.items() if name.startswith(ISSUE_BASELINES[task])}
    cell = {
        "samples": len(rows),
        "repeated_share_mean": statistics.mean(m.repeated_share for m in measured),
        "repeated_share_max": max(m.repeated_share for m in measured),
        "repeats_within_chapters_per_prompt": statistics.mean(m.within_chapters for m in measured),
        "prompts_with_chapter_repeats": sum(m.within_chapters > 0 for m in measured) / len(rows),
        "banned_per_prompt": statistics.mean(banned),
        "baselines": scores,
        "best_issue_baseline": max(issue.items(), key=lambda kv: kv[1]),
        "best_baseline": max(scores.items(), key=lambda kv: kv[1]),
    }
    if task == "story_multihop":
        cell["same_chapter_share"] = statistics.mean(
            row["evidence_chapters"][0] == row["evidence_chapters"][1] for row in rows
        )
    if task == "story_inventory":
        cell["answer_items_mean"] = statistics.mean(len(row["answer"]) for row in rows)
    return cell


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from longtasks.lengths import format_length, parse_lengths

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--baseline-src", type=Path, required=True, help="another checkout (the first release)"
    )
    parser.add_argument("--lengths", default="4k,16k,32k,128k")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--long-lengths", default="1M,2M", help="inventory answer size only")
    parser.add_argument("--long-samples", type=int, default=3)
    parser.add_argument("--out", default="bench_story_text.json")
    args = parser.parse_args()
    args.lengths = parse_lengths(args.lengths)
    args.long_lengths = parse_lengths(args.long_lengths) if args.long_lengths else []

    results: dict = {"command": " ".join(sys.argv), "lengths": args.lengths, "sources": {}}
    for name, src in (("before", args.baseline_src.resolve()), ("after", ROOT)):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "rows.jsonl"
            generate(src, args, out)
            cells: dict[tuple[str, int], list[dict]] = defaultdict(list)
            long_rows: dict[int, list[dict]] = defaultdict(list)
            for line in out.read_text().splitlines():
                row = json.loads(line)
                if row.get("long"):
                    long_rows[row["length"]].append(row)
                else:
                    cells[(row["task"], row["length"])].append(row)
        source = {f"{task}@{length}": measure(rows) for (task, length), rows in cells.items()}
        source["inventory_long"] = {
            str(length): {
                "items": [r["items"] for r in rows],
                "answer_tokens": [r["answer_tokens"] for r in rows],
            }
            for length, rows in long_rows.items()
        }
        results["sources"][name] = {"src": str(src), "cells": source}
    _print(results, format_length)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


def _print(results: dict, format_length) -> None:
    before, after = (results["sources"][k]["cells"] for k in ("before", "after"))
    lengths = results["lengths"]
    print("repeated-sentence share per prompt, mean (max), before -> after")
    for task in TASKS:
        row = [
            f"{format_length(n)} " + _pair(before, after, f"{task}@{n}", "repeated_share_mean", "{:.2%}")
            for n in lengths
        ]
        print(f"  {task:16s} " + " | ".join(row))
    print("sentences repeated inside a chapter, per prompt; banned collocations per prompt")
    for task in TASKS:
        row = [
            f"{format_length(n)} " + _pair(before, after, f"{task}@{n}", "repeats_within_chapters_per_prompt", "{:.1f}")
            + " / " + _pair(before, after, f"{task}@{n}", "banned_per_prompt", "{:.1f}")
            for n in lengths
        ]  # fmt: skip
        print(f"  {task:16s} " + " | ".join(row))
    print("best trivial baseline of the issue's list (best of every reader), before -> after")
    for task in TASKS:
        row = []
        for n in lengths:
            key = f"{task}@{n}"
            b, a = before[key]["best_issue_baseline"], after[key]["best_issue_baseline"]
            bb, ab = before[key]["best_baseline"], after[key]["best_baseline"]
            row.append(f"{format_length(n)} {b[1]:.2f} ({bb[1]:.2f}) -> {a[1]:.2f} ({ab[1]:.2f})")
        print(f"  {task:16s} " + " | ".join(row))
    print("multi-hop answers in the question item's chapter")
    print(
        "  "
        + " | ".join(
            f"{format_length(n)} "
            + _pair(before, after, f"story_multihop@{n}", "same_chapter_share", "{:.0%}")
            for n in lengths
        )
    )
    for length, b in before["inventory_long"].items():
        a = after["inventory_long"].get(length, {})
        print(f"inventory answer at {format_length(int(length))}: items {b['items']} -> {a.get('items')}, "
              f"tokens {b['answer_tokens']} -> {a.get('answer_tokens')}")  # fmt: skip


def _pair(before: dict, after: dict, key: str, field: str, fmt: str) -> str:
    return fmt.format(before[key][field]) + " -> " + fmt.format(after[key][field])


if __name__ == "__main__":
    main()
