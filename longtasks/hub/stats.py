"""Measure what the card reports about each config from the parquet files themselves.

The card states measured numbers (token counts, evidence depths), not the settings that were asked
for, so a reader can trust them even if the generator had a bug.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

DEPTH_BINS = 10
"""Evidence depth histogram bins: [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0]."""

_COLUMNS = ["input_tokens", "evidence_depths", "answer_kind", "meta"]


@dataclass(frozen=True)
class ConfigStats:
    """Numbers measured on one config's rows."""

    rows: int
    bytes: int
    input_tokens_min: int | None
    input_tokens_max: int | None
    meta_ranges: tuple[tuple[str, int, int], ...]
    """(field, min, max) of every `num_*` count in the family's `meta` (a story's chapters, a list's items)."""
    evidence_per_sample_mean: float | None
    depth_histogram: tuple[int, ...]
    answer_kinds: tuple[str, ...]
    sources: tuple[tuple[str, str, str], ...] = ()
    """(source, revision, content sha256) of the third-party data the rows quote, from `meta` fields
    `source`, `source_revision` and `source_sha256` (tasks built from a dataset record them)."""


def depth_bin(depth: float) -> int:
    """Histogram bin of a depth in [0, 1]; 1.0 belongs to the last bin."""
    clamped = min(max(float(depth), 0.0), 1.0)
    return min(int(clamped * DEPTH_BINS), DEPTH_BINS - 1)


def config_stats(files: list[Path]) -> ConfigStats:
    """Read only the needed columns of `files` and summarise them."""
    tokens: list[int] = []
    numbers: dict[str, list[int]] = {}
    evidence_counts: list[int] = []
    histogram = [0] * DEPTH_BINS
    kinds: Counter[str] = Counter()
    sources: dict[tuple[str, str, str], None] = {}
    for path in files:
        table = pq.read_table(path, columns=_COLUMNS)
        tokens.extend(table.column("input_tokens").to_pylist())
        for text in table.column("meta").to_pylist():
            meta = json.loads(text or "{}")
            for key, value in meta.items():
                if key.startswith("num_") and isinstance(value, int) and not isinstance(value, bool):
                    numbers.setdefault(key, []).append(value)
            if "source" in meta:
                pin = (str(meta["source"]), str(meta.get("source_revision")), str(meta.get("source_sha256")))
                sources[pin] = None
        kinds.update(table.column("answer_kind").to_pylist())
        for depths in table.column("evidence_depths").to_pylist():
            depths = depths or []
            evidence_counts.append(len(depths))
            for depth in depths:
                histogram[depth_bin(depth)] += 1
    return ConfigStats(
        rows=len(tokens),
        bytes=sum(path.stat().st_size for path in files),
        input_tokens_min=min(tokens, default=None),
        input_tokens_max=max(tokens, default=None),
        meta_ranges=tuple((key, min(values), max(values)) for key, values in sorted(numbers.items())),
        evidence_per_sample_mean=(sum(evidence_counts) / len(evidence_counts)) if evidence_counts else None,
        depth_histogram=tuple(histogram),
        answer_kinds=tuple(sorted(kinds)),
        sources=tuple(sources),
    )
