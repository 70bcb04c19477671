"""Evidence depth control: where in the story the facts a question needs are placed."""

from __future__ import annotations

import random


def parse_depth_mode(mode: str) -> str | list[float]:
    """``uniform``, ``stratified`` or a comma-separated list of depths in [0, 1] (e.g. ``0.1,0.5,0.9``)."""
    if mode in {"uniform", "stratified"}:
        return mode
    try:
        depths = [float(part) for part in mode.split(",") if part.strip()]
    except ValueError:
        depths = []
    if not depths or any(not 0.0 <= d <= 1.0 for d in depths):
        raise ValueError(
            f"invalid depth {mode!r}: use 'uniform', 'stratified' or comma-separated depths in [0, 1]"
        )
    return depths


def target_depths(mode: str, count: int, rng: random.Random) -> list[float]:
    """`count` target depths: uniform at random, one per equal stratum (shuffled), or given (cycled)."""
    parsed = parse_depth_mode(mode)
    if parsed == "uniform":
        return [rng.random() for _ in range(count)]
    if parsed == "stratified":
        depths = [(i + rng.random()) / count for i in range(count)]
        rng.shuffle(depths)
        return depths
    return [parsed[i % len(parsed)] for i in range(count)]


def chapter_at_depth(depth: float, num_chapters: int) -> int:
    """1-based chapter whose share of the story contains `depth`."""
    return min(num_chapters, int(depth * num_chapters) + 1)
