"""Predictions of the reference model on prepared held-out rows: dense, then sparse methods (GPU).

Why not lm-eval here: the GPU image has neither lm-eval nor datasets, and the device minutes are few. Dense
runs batched through `model.generate` (every prompt of one task × length has exactly the same token count,
so nothing is padded); sparse runs go one prompt at a time through `sparse_eval.generate` on the reference
backend (the same selections as flex, without compile time), `--batch-size` prompts of one cell at a time
(`sparse_eval.generate` on a list: padding never selected, tokens equal to batch-1 runs). Scoring happens on
the CPU afterwards (`models/reference/collect.py`: `longtasks score` per method and c).

The sparse work is cut into units (length, c, method, task, a chunk of `--batch-size` rows) in priority order:
every length, then c in `--sparse-c` order, then method, task and chunk. Parallel workers either split them
statically (`--shard I/N`) or, with `--queue DIR`, claim the next free unit (a file created exclusively in
DIR), so the finished cells form a prefix of that order and a run stopped by `--budget-s` (no new unit is
started after it) leaves at most one unit per worker unfinished. Units whose rows are all in a `--done` JSONL
(an earlier call's predictions) are skipped. Every finished prediction is written at once.

    python models/reference/evaluate.py eval_rows.parquet --gguf G --tokenizer T --adapter A --out preds.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
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
    p.add_argument("--sparse-length", default="4096", help="one or more lengths, comma-separated, in order")
    p.add_argument(
        "--sparse-methods", default="vertical_slash,block_sparse,flexprefill,quest,snapkv,ada_snapkv"
    )
    p.add_argument("--sparse-c", default="20,5,10,2", help="in this order (a stopped run keeps the first)")
    p.add_argument("--sparse-n", type=int, default=8, help="rows per sparse cell (0: no sparse runs)")
    p.add_argument("--batch-size", type=int, default=1, help="rows of one cell generated together")
    p.add_argument(
        "--shard", default="0/1", help="I/N: run every N-th sparse unit from the I-th (parallel workers)"
    )
    p.add_argument("--queue", type=Path, help="claim units from this folder instead of --shard")
    p.add_argument("--done", type=Path, nargs="*", default=[], help="JSONL predictions to skip")
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
        done_keys = set()
        for path in args.done:
            if path.is_file():
                for line in path.read_text(encoding="utf-8").splitlines():
                    r = json.loads(line)
                    done_keys.add((r["method"], float(r["compression"]), r["id"]))
        units = []
        for length in [int(x) for x in args.sparse_length.split(",") if x]:
            for c in map(float, args.sparse_c.split(",")):
                for method in args.sparse_methods.split(","):
                    for task in args.sparse_tasks.split(","):
                        chosen = by_config[(task, length)][: args.sparse_n]
                        for i in range(0, len(chosen), args.batch_size):
                            chunk = chosen[i : i + args.batch_size]
                            if all((method, c, r["id"]) in done_keys for r in chunk):
                                continue
                            units.append((f"{length}-{c:g}-{method}-{task}-{i}", c, method, task, chunk))
        if args.queue is None:
            index, count = map(int, args.shard.split("/"))
            units = units[index::count]
        else:
            args.queue.mkdir(parents=True, exist_ok=True)
        done = 0
        for key, c, method, task, chunk in units:
            if time.time() - start > args.budget_s:
                break
            if args.queue is not None:
                try:
                    os.close(os.open(args.queue / key, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    continue  # another worker has it
            t = time.time()
            prompts = [prompt_ids(row, tokenizer) for row in chunk]
            results = sparse_eval.generate(
                model,
                prompts if len(prompts) > 1 else prompts[0],  # one prompt: the batch-1 path
                method,
                compression=c,
                backend=args.backend,
                max_new_tokens=budget[task],
                eos_token_id=tokenizer.eos_token_id,
            )
            results = results if isinstance(results, list) else [results]
            for row, result in zip(chunk, results, strict=True):
                text = tokenizer.decode(result.tokens, skip_special_tokens=True)
                write(row, method, c, text, len(result.tokens), compact(result.report.to_dict()))
            done += 1
            print(f"unit {key}: {len(chunk)} rows in {time.time() - t:.1f}s", flush=True)
        print(f"sparse: {done} units of {len(units)} in {time.time() - start:.1f}s", flush=True)
    print(f"total {time.time() - start:.1f}s", flush=True)


if __name__ == "__main__":
    main()
