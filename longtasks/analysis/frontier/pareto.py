"""The Pareto frontier of accuracy against cost: points no other point beats on both (cheaper or equal cost
and higher or equal accuracy, one of them strictly)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def pareto_mask(cost: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    cost, accuracy = np.asarray(cost, float), np.asarray(accuracy, float)
    no_worse = (cost[None, :] <= cost[:, None]) & (accuracy[None, :] >= accuracy[:, None])
    better = (cost[None, :] < cost[:, None]) | (accuracy[None, :] > accuracy[:, None])
    return ~np.any(no_worse & better, axis=1)


def pareto_flags(points: pd.DataFrame) -> pd.DataFrame:
    """`points` with an `on_frontier` column, computed within each (phase, length) panel."""
    flags = np.zeros(len(points), dtype=bool)
    for _, group in points.groupby(["phase", "length"]):
        positions = points.index.get_indexer(group.index)
        flags[positions] = pareto_mask(group["cost"].to_numpy(), group["accuracy"].to_numpy())
    return points.assign(on_frontier=flags)
