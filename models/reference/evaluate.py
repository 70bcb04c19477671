"""Predictions of the reference model on prepared held-out rows: dense, then sparse methods (GPU).

Why not lm-eval here: the GPU image has neither lm-eval nor datasets, and the device minutes are few. Dense
runs batched through `model.generate` (every prompt of one task × length has exactly the same token count,
so nothing is padded); sparse runs go one prompt at a time through `sparse_eval.generate` on the reference
backend (the same selections as flex, without compile time). Work runs in the given order until
`--budget-s`; every finished prediction is written at once, so a run stopped early keeps what it did.
Scoring happens on the CPU afterwards (`models/reference/collect.py`: `longtasks score` per method and c).

    python models/reference/evaluate.py eval_rows.parquet --gguf G --tokenizer T --adapter A --out preds.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import torch
from peft import PeftModel
from transformers import AutoTokenizer

import sparse_eval
from longtasks.reference import load_base_model


def compact(report: dict) -> dict:
    """The report without its per-layer and per-head detail: method, target and each phase's achieved c."""
    out = {key: value for key, value in report.items() if not isinstance(value, dict)}
    for phase, stats in report.items():
        if isinstance(stats, dict):
            out[phase] = {k: v for k, v in stats.items() if k not in ("per_layer", "per_head")}
    return out


def budgets(rows: list[dict], tokenizer) -> dict[str, int]:
    """New-token budget per task: 1.5 x its longest gold answer in this set, plus 8 (answers are short)."""
    longest: dict[str, int] = defaultdict(int)
    for row in rows:
        n = len(tokenizer(row["completion"], add_special_tokens=False)["input_ids"])
        longest[row["task"]] = max(longest[row["task"]], n)
    return {task: int(1.5 * n) + 8 for task, n in longest.items()}


def prompt_ids(row: dict, tokenizer) -> list[int]:
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": row["prompt"]}], add_generation_prompt=True
    )
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    if len(ids) != row["length"]:
        raise ValueError(f"{row['id']}: {len(ids)} prompt tokens, generated for {row['length']}")
    return list(ids)


def dense_batch(model, tokenizer, rows: list[dict], max_new: int) -> list[tuple[str, int]]:
    ids = torch.tensor([prompt_ids(r, tokenizer) for r in rows], device=model.device)
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.eos_token_id,
        )
    results = []
    for seq in out[:, ids.shape[1] :].tolist():
        n = seq.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in seq else len(seq)
        results.append((tokenizer.decode(seq[:n], skip_special_tokens=True), n))
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rows", type=Path)
    p.add_argument("--gguf", type=Path, required=True)
    p.add_argument("--tokenizer", type=Path, required=True)
    p.add_argument("--adapter", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--dense-lengths", default="4096,2048,8192")
    p.add_argument("--dense-n", type=int, default=24)
    p.add_argument("--sparse-tasks", default="story_retrieval,ruler_niah")
    p.add_argument("--sparse-length", type=int, default=4096)
    p.add_argument(
        "--sparse-methods", default="vertical_slash,block_sparse,flexprefill,quest,snapkv,ada_snapkv"
    )
    p.add_argument("--sparse-c", default="20,5,10,2", help="in this order (a stopped run keeps the first)")
    p.add_argument("--sparse-n", type=int, default=8, help="0: no sparse runs")
    p.add_argument(
        "--shard", default="0/1", help="I/N: run every N-th sparse job from the I-th (parallel workers)"
    )
    p.add_argument("--backend", default="reference", help="sparse_eval backend")
    p.add_argument("--budget-s", type=float, default=300)
    args = p.parse_args()
    start = time.time()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    model = PeftModel.from_pretrained(
        load_base_model(args.gguf, "bfloat16"), str(args.adapter)
    ).merge_and_unload()
    model = model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    rows = pq.read_table(args.rows).to_pylist()
    budget = budgets(rows, tokenizer)
    by_config: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for row in rows:
        by_config[(row["task"], row["length"])].append(row)
    print(f"loaded in {time.time() - start:.1f}s; budgets {budget}", flush=True)

    with args.out.open("a", encoding="utf-8") as out:

        def write(row: dict, method: str, c: float, text: str, n: int, report: dict | None) -> None:
            record = {
                "id": row["id"],
                "task": row["task"],
                "length": row["length"],
                "method": method,
                "compression": c,
                "prediction": text,
                "new_tokens": n,
                "report": report,
            }
            out.write(json.dumps(record) + "\n")
            out.flush()

        for length in [int(x) for x in args.dense_lengths.split(",") if x]:
            for (task, ln), config_rows in sorted(by_config.items()):
                if ln != length or time.time() - start > args.budget_s:
                    continue
                t = time.time()
                chosen = config_rows[: args.dense_n]
                for row, (text, n) in zip(
                    chosen, dense_batch(model, tokenizer, chosen, budget[task]), strict=True
                ):
                    write(row, "dense", 1.0, text, n, None)
                print(f"dense {task} {length}: {len(chosen)} in {time.time() - t:.1f}s", flush=True)
        work = [
            (c, method, task, row)
            for c in map(float, args.sparse_c.split(","))
            for method in args.sparse_methods.split(",")
            for task in args.sparse_tasks.split(",")
            for row in by_config[(task, args.sparse_length)][: args.sparse_n]
        ]
        index, count = map(int, args.shard.split("/"))
        work = work[index::count]
        done = 0
        for c, method, task, row in work:
            if time.time() - start > args.budget_s:
                break
            result = sparse_eval.generate(
                model,
                prompt_ids(row, tokenizer),
                method,
                compression=c,
                backend=args.backend,
                max_new_tokens=budget[task],
                eos_token_id=tokenizer.eos_token_id,
            )
            text = tokenizer.decode(result.tokens, skip_special_tokens=True)
            write(row, method, c, text, len(result.tokens), compact(result.report.to_dict()))
            done += 1
        print(f"sparse shard {args.shard}: {done} of {len(work)} in {time.time() - start:.1f}s", flush=True)
    print(f"total {time.time() - start:.1f}s", flush=True)


if __name__ == "__main__":
    main()
