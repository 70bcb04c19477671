"""Turn `longtasks generate` folders into one compact parquet of (prompt, completion) rows for the GPU.

Why: the GPU image has no faker/datasets, so the text and the gold answer written the way it scores 1.0
(`longtasks.scoring.format_answer`) are produced here, on the CPU, and carried there as one small file.

    python models/reference/prepare.py DATA_DIR [DATA_DIR ...] --out rows.parquet
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from longtasks.scoring import format_answer

COLUMNS = ("id", "task", "length", "seed", "index", "prompt", "completion")


def read_rows(folder: Path) -> list[dict]:
    """Every generated row of a `longtasks generate` output folder, in file order."""
    rows: list[dict] = []
    for path in sorted((folder / "data").glob("*/*.parquet")):
        rows.extend(pq.read_table(path).to_pylist())
    if not rows:
        raise FileNotFoundError(f"{folder} holds no generated rows (expected data/<config>/*.parquet)")
    return rows


def to_training_row(row: dict) -> dict:
    """The prompt as generated and the gold answer in the one form that scores 1.0."""
    if not row["chat"]:
        raise ValueError(f"{row['id']}: generate with --chat (the reference model is trained in chat format)")
    completion = format_answer(row["answer_kind"], json.loads(row["answer"]))
    return {**{key: row[key] for key in COLUMNS if key != "completion"}, "completion": completion}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = [to_training_row(row) for folder in args.folders for row in read_rows(folder)]
    table = pa.Table.from_pylist(rows).select(list(COLUMNS))
    pq.write_table(table, args.out, compression="zstd", compression_level=19)
    counts = Counter((row["task"], row["length"], row["seed"]) for row in rows)
    for (task, length, seed), count in sorted(counts.items()):
        print(f"{task:16s} {length:6d} seed {seed}: {count}")
    print(f"{len(rows)} rows, {sum(r['length'] for r in rows)} prompt tokens -> {args.out}")


if __name__ == "__main__":
    main()
