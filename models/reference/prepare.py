"""Turn `longtasks generate` folders into one compact parquet of (prompt, completion) rows for the GPU.

Why: the GPU image has no faker/datasets, so the text and the gold answer written the way it scores 1.0
(`longtasks.scoring.format_answer`) are produced here, on the CPU, and carried there as one small file.

    python models/reference/prepare.py DATA_DIR [DATA_DIR ...] --out rows.parquet [--parts N]

`--parts N` writes rows.0.parquet ... rows.{N-1}.parquet instead (row i in part i mod N, so the parts are
about the same size): a set larger than what one transfer to the GPU machine has room for goes in several.
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
    parser.add_argument("--parts", type=int, default=1, help="write this many interleaved parquet files")
    args = parser.parse_args()
    rows = [to_training_row(row) for folder in args.folders for row in read_rows(folder)]
    if args.parts == 1:
        outputs = [(args.out, rows)]
    else:
        outputs = [(args.out.with_suffix(f".{i}.parquet"), rows[i :: args.parts]) for i in range(args.parts)]
    for path, part in outputs:
        table = pa.Table.from_pylist(part).select(list(COLUMNS))
        pq.write_table(table, path, compression="zstd", compression_level=19)
    counts = Counter((row["task"], row["length"], row["seed"]) for row in rows)
    for (task, length, seed), count in sorted(counts.items()):
        print(f"{task:16s} {length:6d} seed {seed}: {count}")
    names = ", ".join(f"{path} ({path.stat().st_size / 1e6:.1f} MB)" for path, _ in outputs)
    print(f"{len(rows)} rows, {sum(r['length'] for r in rows)} prompt tokens -> {names}")


if __name__ == "__main__":
    main()
