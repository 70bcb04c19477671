"""LoRA fine-tuning of SmolLM2-135M-Instruct on prepared task rows, within a wall-clock budget (GPU).

Why a time budget: the GPU is lent by the minute. The learning rate warms up over `--warmup` steps and then
decays linearly to zero at whichever comes first, the end of `--budget-s` or of `--max-epochs`, so a run
always finishes its schedule. Batches hold one prompt length each (every generated prompt of a length has
exactly that many tokens, so nothing is padded but the answers) and about `--batch-tokens` tokens. The loss is
the cross-entropy of the answer tokens only (`<answer>…</answer><|im_end|>`); the LM head runs on those alone.

    python models/reference/train.py rows.parquet [more.parquet ...] --gguf SmolLM2.gguf --tokenizer TOKDIR --out adapter/

`--init-adapter DIR` goes on training a saved adapter (its rank, alpha and targets; `--rank`/`--alpha` are
then ignored) with a fresh optimizer and schedule: a second, shorter stage on data that leans toward the
tasks the first stage left short, without paying again for what it learned.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoTokenizer

from longtasks.reference import load_base_model

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def encode(rows: list[dict], tokenizer) -> list[tuple[str, list[int], list[int]]]:
    """(task, prompt ids, answer ids + eos); the prompt must have exactly the generated length."""
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": r["prompt"]}], add_generation_prompt=True, tokenize=False
        )
        for r in rows
    ]
    prompts = tokenizer(texts, add_special_tokens=False)["input_ids"]
    answers = tokenizer([r["completion"] for r in rows], add_special_tokens=False)["input_ids"]
    out = []
    for row, prompt, answer in zip(rows, prompts, answers, strict=True):
        if len(prompt) != row["length"]:
            raise ValueError(f"{row['id']}: {len(prompt)} prompt tokens, generated for {row['length']}")
        out.append((row["task"], prompt, [*answer, tokenizer.eos_token_id]))
    return out


def make_batches(samples: list, batch_tokens: int, rng: random.Random) -> list[list[int]]:
    """Index batches of one prompt length each, shuffled across lengths."""
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, (_, prompt, _) in enumerate(samples):
        by_length[len(prompt)].append(i)
    batches = []
    for length, indices in by_length.items():
        rng.shuffle(indices)
        size = max(1, batch_tokens // length)
        batches += [indices[i : i + size] for i in range(0, len(indices), size)]
    rng.shuffle(batches)
    return batches


def batch_loss(model, samples: list, batch: list[int], eos: int, device: str) -> tuple[torch.Tensor, dict]:
    """Mean answer-token cross-entropy of one batch, and the per-task sums (loss, tokens)."""
    seqs = [samples[i][1] + samples[i][2] for i in batch]
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), eos, dtype=torch.long)
    rows, cols, targets, tasks = [], [], [], []
    for b, i in enumerate(batch):
        task, prompt, answer = samples[i]
        ids[b, : len(prompt) + len(answer)] = torch.tensor(prompt + answer)
        positions = range(len(prompt) - 1, len(prompt) + len(answer) - 1)
        rows += [b] * len(answer)
        cols += list(positions)
        targets += answer
        tasks += [task] * len(answer)
    inner = model.base_model.model  # the LlamaForCausalLM under peft
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
        hidden = inner.model(input_ids=ids.to(device)).last_hidden_state
        picked = hidden[torch.tensor(rows, device=device), torch.tensor(cols, device=device)]
        logits = inner.lm_head(picked).float()
    per_token = torch.nn.functional.cross_entropy(
        logits, torch.tensor(targets, device=device), reduction="none"
    )
    sums: dict = defaultdict(lambda: [0.0, 0])
    values = per_token.detach().cpu().tolist()
    for task, value in zip(tasks, values, strict=True):
        sums[task][0] += value
        sums[task][1] += 1
    return per_token.mean(), dict(sums)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rows", type=Path, nargs="+", help="prepare.py parquet(s), read together")
    p.add_argument("--gguf", type=Path, required=True)
    p.add_argument("--tokenizer", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--init-adapter", type=Path, help="go on training this saved adapter (second stage)")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16)
    p.add_argument("--lr", type=float, default=8e-4)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batch-tokens", type=int, default=32768)
    p.add_argument("--budget-s", type=float, default=240)
    p.add_argument("--max-epochs", type=float, default=3)
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    t0 = time.time()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    samples = encode([row for path in args.rows for row in pq.read_table(path).to_pylist()], tokenizer)
    t_data = time.time() - t0
    base = load_base_model(args.gguf, dtype="bfloat16").to(device)
    if args.init_adapter:
        model = PeftModel.from_pretrained(base, args.init_adapter, is_trainable=True)
        for q in model.parameters():  # the saved adapter is bf16; train it in float32 like a fresh one
            if q.requires_grad:
                q.data = q.data.float()
    else:
        lora = LoraConfig(
            r=args.rank,
            lora_alpha=args.alpha,
            lora_dropout=0.0,
            target_modules=TARGETS,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(base, lora)
    trainable = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.0, betas=(0.9, 0.99))
    t_load = time.time() - t0 - t_data
    print(
        f"data {len(samples)} rows in {t_data:.1f}s, model in {t_load:.1f}s, "
        f"{sum(q.numel() for q in trainable)} trainable params",
        flush=True,
    )

    epoch_batches = make_batches(samples, args.batch_tokens, rng)
    total_cap = int(args.max_epochs * len(epoch_batches))
    if args.max_steps:
        total_cap = min(total_cap, args.max_steps)
    log, queue, step, seen_tokens = [], [], 0, 0
    start = time.time()
    model.train()
    while True:
        if not queue:
            queue = make_batches(samples, args.batch_tokens, rng) if step else list(epoch_batches)
        batch = queue.pop()
        progress = max((time.time() - start) / args.budget_s, step / total_cap)
        if progress >= 1:
            break
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (1 - progress)
        for group in opt.param_groups:
            group["lr"] = lr
        loss, sums = batch_loss(model, samples, batch, tokenizer.eos_token_id, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        step += 1
        seen_tokens += sum(len(samples[i][1]) + len(samples[i][2]) for i in batch)
        entry = {
            "step": step,
            "t": round(time.time() - start, 2),
            "lr": lr,
            "loss": loss.item(),
            "grad_norm": float(norm),
            "tokens": seen_tokens,
            "tasks": {k: [round(v[0], 4), v[1]] for k, v in sums.items()},
        }
        log.append(entry)
        if step % 25 == 0 or step == 1:
            print(
                f"step {step} t={entry['t']}s lr={lr:.2e} loss={entry['loss']:.4f} tokens={seen_tokens}",
                flush=True,
            )
        if not math.isfinite(entry["loss"]):
            raise RuntimeError(f"loss is {entry['loss']} at step {step}")

    for q in trainable:  # bf16 halves the file; loading casts it back to the base model's dtype
        q.data = q.data.to(torch.bfloat16)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out, save_embedding_layers=False)
    summary = {
        "hyperparameters": {
            k: ([str(x) for x in v] if isinstance(v, list) else str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
        },
        "rows": len(samples),
        "steps": step,
        "epoch_batches": len(epoch_batches),
        "epochs": round(step / len(epoch_batches), 3),
        "tokens": seen_tokens,
        "train_seconds": round(time.time() - start, 1),
        "load_seconds": round(t_load + t_data, 1),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "log": log,
    }
    (args.out / "train_log.json").write_text(json.dumps(summary))
    print(
        f"done: {step} steps, {seen_tokens} tokens, {summary['epochs']} epochs, {summary['train_seconds']}s",
        flush=True,
    )


if __name__ == "__main__":
    main()
