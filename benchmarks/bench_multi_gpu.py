"""Throughput of `longtasks eval` with sparse-hf on one GPU vs two (data parallel and model parallel).

Runs the same evaluation three ways on one host and prints samples/s:
  * 1 GPU: one process (`python -m longtasks eval`, CUDA_VISIBLE_DEVICES=0);
  * 2 GPUs, data parallel: `accelerate launch --multi_gpu --num_processes 2 -m longtasks eval`, one whole
    model per GPU, lm-eval splitting the documents;
  * 2 GPUs, model parallel: one process with `parallelize=True` (layers spread over both GPUs by
    `device_map="auto"`), the sparse attention running on each layer's device.
The model is a random-weight Qwen2 of a chosen shape (default: Qwen2.5-0.5B's) with the offline default
tokenizer, so no weights are downloaded; its answers are noise, so every sample generates the full
`--max-gen` tokens (a fixed amount of work per sample). Also checks that the data-parallel run decided every
document as the one-GPU run did (same filtered answers), which is what lets a user split a grid over GPUs.

    python benchmarks/bench_multi_gpu.py --length 8k --num-samples 32 --out $OUT
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_model(path: Path, args: argparse.Namespace) -> None:
    """A random-weight Qwen2 saved with the offline default tokenizer (what `pretrained=` points at)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from longtasks import load_tokenizer

    tokenizer = load_tokenizer().hf
    tokenizer.save_pretrained(path)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=131072,
        tie_word_embeddings=True,
        use_sliding_window=False,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        torch_dtype="bfloat16",
    )
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(path)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e9:.2f}B parameters, {path}", flush=True)


def eval_args(args: argparse.Namespace, model: Path, out: Path, extra: str = "") -> list[str]:
    model_args = (
        f"pretrained={model},dtype=bfloat16,method={args.method},compression={args.compression}{extra}"
    )
    return [
        *("eval", "--lengths", args.length, "--num-samples", str(args.num_samples), "--no-progress"),
        *("--model", "sparse-hf", "--model_args", model_args, "--tasks", args.tasks),
        *("--gen_kwargs", f"max_gen_toks={args.max_gen}", "--batch_size", str(args.batch_size)),
        *("--log_samples", "--output_path", str(out)),
    ]


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d:\d\d:\d\d:\d\d) ")


def generation_seconds(log: str) -> float | None:
    """Seconds from lm-eval's "Running generate_until requests" to sparse-hf's compression summary, which it
    logs right after the last answer: the generation phase alone, without start-up, model load or task build
    (log timestamps: whole seconds). With several processes: the first start to the summary (rank 0's,
    written once every share is done)."""
    start = end = None
    for line in log.splitlines():
        stamp = _STAMP.match(line)
        if stamp is None:
            continue
        when = datetime.strptime(stamp.group(1), "%Y-%m-%d:%H:%M:%S")
        if "Running generate_until requests" in line and start is None:
            start = when
        elif "sparse-hf" in line and "achieved" in line:
            end = when
    return (end - start).total_seconds() if start and end else None


def summarise(name: str, log: str, wall: float | None, samples: int) -> dict:
    """A mode's row from its log: the generation phase's seconds and samples/s."""
    seconds = generation_seconds(log)
    if seconds is None:
        return {"name": name, "ok": False, "wall_s": wall}
    row = {"name": name, "ok": True, "samples": samples, "wall_s": wall, "generate_s": seconds}
    row["samples_per_s"] = samples / max(seconds, 1.0)
    print(
        f"   {samples} samples, generation {seconds:.0f} s, {row['samples_per_s']:.3f} samples/s", flush=True
    )
    return row


def run(name: str, command: list[str], env: dict[str, str], out: Path, log_dir: Path, samples: int) -> dict:
    """Run one evaluation: its wall time, its generation phase from the log, and its per-document answers."""
    print(f"== {name}: {' '.join(command)}", flush=True)
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - started
    log = done.stdout + done.stderr
    (log_dir / f"{name}.log").write_text(log, encoding="utf-8")
    if done.returncode:
        print(log[-3000:])
    row = summarise(name, log, wall, samples)
    row["returncode"] = done.returncode
    answers: dict[tuple[str, int], object] = {}
    for path in glob.glob(str(out / "*" / "samples_*.jsonl")):
        task = Path(path).name.split("_20")[0].removeprefix("samples_")
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            sample = json.loads(line)
            answers[(task, sample["doc_id"])] = sample["filtered_resps"]
    row["_answers"] = answers or None
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--length", default="8k")
    parser.add_argument("--num-samples", type=int, default=32, help="samples per task")
    parser.add_argument("--tasks", default="story_retrieval")
    parser.add_argument("--method", default="quest")
    parser.add_argument("--compression", type=float, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-gen", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=896)
    parser.add_argument("--intermediate", type=int, default=4864)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--heads", type=int, default=14)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=["1gpu", "dp2", "mp2"], choices=["1gpu", "dp2", "mp2"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_multi_gpu"))
    parser.add_argument("--out", type=Path, default=None, help="folder for bench_multi_gpu.json and the logs")
    parser.add_argument(
        "--mp-max-memory",
        default=None,
        help="max_memory_per_gpu for the model-parallel run (e.g. 600MB), so a small model is split for sure",
    )
    parser.add_argument(
        "--from-logs",
        type=Path,
        default=None,
        help="rebuild the table from a run's saved <mode>.log files (no GPU; answers not compared)",
    )
    args = parser.parse_args()
    if args.from_logs is not None:
        samples = args.num_samples * len(args.tasks.split(","))
        rows = []
        for mode in args.modes:
            path = args.from_logs / f"{mode}.log"
            if not path.is_file():
                parser.error(f"--from-logs: no {path}; the folder needs <mode>.log for each of --modes")
            rows.append(summarise(mode, path.read_text(encoding="utf-8"), None, samples))
        report(rows, args, [], args.out or args.from_logs)
        return

    import torch

    gpus = torch.cuda.device_count()
    if gpus < 2 and ("dp2" in args.modes or "mp2" in args.modes):
        parser.error(f"--modes dp2/mp2 need 2 GPUs, found {gpus}; use --modes 1gpu")
    args.work.mkdir(parents=True, exist_ok=True)
    log_dir = args.out or args.work
    log_dir.mkdir(parents=True, exist_ok=True)
    model = args.work / "model"
    if not (model / "config.json").exists():
        build_model(model, args)
    base = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "NCCL_NVLS_ENABLE": "0",  # NVLink multicast stays off on shared hosts
        "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    parallel = ",parallelize=True" + (
        f",max_memory_per_gpu={args.mp_max_memory}" if args.mp_max_memory else ""
    )
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    plans = {
        "1gpu": ([sys.executable, "-m", "longtasks"], {"CUDA_VISIBLE_DEVICES": "0"}, ""),
        "dp2": (
            [*launch, "--main_process_port", str(free_port()), "-m", "longtasks"],
            {"CUDA_VISIBLE_DEVICES": "0,1"},
            "",
        ),
        "mp2": ([sys.executable, "-m", "longtasks"], {"CUDA_VISIBLE_DEVICES": "0,1"}, parallel),
    }
    samples = args.num_samples * len(args.tasks.split(","))
    rows = []
    for mode in args.modes:
        prefix, env, extra = plans[mode]
        out = args.work / f"out_{mode}"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        command = [*prefix, *eval_args(args, model, out, extra)]
        rows.append(run(mode, command, {**base, **env}, out, log_dir, samples))
    report(rows, args, [torch.cuda.get_device_name(i) for i in range(gpus)], log_dir)


def report(rows: list[dict], args: argparse.Namespace, gpus: list[str], log_dir: Path) -> None:
    """Speedups against the one-GPU row, answer agreement, the table and bench_multi_gpu.json."""
    answers = {row["name"]: row.pop("_answers", None) for row in rows}
    ref = next((r for r in rows if r["name"] == "1gpu" and r["ok"]), None)
    for row in rows:
        if ref is None or not row["ok"]:
            continue
        row["speedup_vs_1gpu"] = row["samples_per_s"] / ref["samples_per_s"]
        mine, theirs = answers.get(row["name"]), answers.get("1gpu")
        if row is not ref and mine and theirs:
            same = sum(mine.get(key) == value for key, value in theirs.items())
            row["same_answers_as_1gpu"] = f"{same}/{len(theirs)}"

    print(f"\n{'mode':<6} {'samples':>7} {'gen. s':>7} {'samples/s':>9} {'vs 1 GPU':>8}  same answers")
    for row in rows:
        if not row["ok"]:
            print(f"{row['name']:<6} failed (log in {log_dir})")
            continue
        print(
            f"{row['name']:<6} {row['samples']:>7} {row['generate_s']:>7.0f} {row['samples_per_s']:>9.3f} "
            f"{row.get('speedup_vs_1gpu', 1.0):>7.2f}x  {row.get('same_answers_as_1gpu', '-')}"
        )
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    payload = {"settings": settings, "gpus": gpus, "rows": rows}
    text = json.dumps(payload, indent=2, default=str)
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "bench_multi_gpu.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
