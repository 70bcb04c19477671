"""Write lm-eval output folders the way `lm-eval --output_path DIR --log_samples` lays them out (results JSON and
samples JSONL side by side), with only the fields the results store reads, for fast offline tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

QWEN_TINY_CONFIG = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2,
                    "intermediate_size": 64, "vocab_size": 1000}  # fmt: skip


def write_run(
    folder: Path,
    samples: dict[str, list[tuple[int, str, float]]],
    *,
    model_args: dict[str, Any],
    model: str = "sparse-hf",
    stamp: str = "2026-01-01T00-00-00.000000",
    date: float = 1.0,
    config: dict[str, Any] | None = None,
    log_samples: bool = True,
) -> Path:
    """`samples` maps task -> [(length, sample id, score)]; returns the results JSON's path."""
    folder.mkdir(parents=True, exist_ok=True)
    results = {
        "results": {task: {"score,none": 0.0} for task in samples},
        "configs": {task: {} for task in samples},
        "n-samples": {
            task: {"original": len(rows), "effective": len(rows)} for task, rows in samples.items()
        },
        "config": {"model": model, "model_args": model_args, "model_num_parameters": 12345, **(config or {})},
        "date": date,
    }
    path = folder / f"results_{stamp}.json"
    path.write_text(json.dumps(results))
    if log_samples:
        for task, rows in samples.items():
            lines = [
                json.dumps({"doc_id": i, "doc": {"id": sid, "task": task, "length": length, "chat": False},
                            "doc_hash": f"hash-{sid}", "score": score, "parsed": 1.0, str(length): score})
                for i, (length, sid, score) in enumerate(rows)
            ]  # fmt: skip
            (folder / f"samples_{task}_{stamp}.jsonl").write_text("\n".join(lines) + "\n")
    return path
