"""Read generated rows back: from an output folder (all or one config) or a single parquet file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from longtasks.dataset_dir import DATA_DIR, read_manifest


def read_rows(data: str | Path, config: str | None = None) -> list[dict[str, Any]]:
    """Rows as dicts (JSON columns left encoded), in config and index order."""
    path = Path(data)
    if path.is_file():
        return pq.read_table(path).to_pylist()
    if not path.is_dir():
        raise ValueError(
            f"{path} does not exist: give an output folder of `longtasks generate` or a parquet file"
        )
    manifest = read_manifest(path)
    if not manifest:
        raise ValueError(f"{path} has no longtasks.json: it is not an output folder of `longtasks generate`")
    names = list(manifest["configs"])
    if config is not None:
        if config not in manifest["configs"]:
            raise ValueError(f"config {config!r} is not in {path}; available: {', '.join(names)}")
        names = [config]
    rows: list[dict[str, Any]] = []
    for name in names:
        for shard in sorted((path / DATA_DIR / name).glob("*.parquet")):
            rows.extend(pq.read_table(shard).to_pylist())
    return rows
