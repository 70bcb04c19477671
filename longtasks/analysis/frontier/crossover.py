"""Where a larger sparse model first beats a smaller dense one at equal cost.

For each phase, sparse method and pair of models (small, large) the gap at length L is

    gap(L) = accuracy of the large model at the small dense model's cost - accuracy of the small dense model,

the large model's accuracy at a given cost being read off its (dense + that method's compressions) curve by
linear interpolation in log cost (the paper interpolates between sparsity levels); a budget below its cheapest
configuration means it cannot compete (no gap). The crossover length is the first L with gap > 0, interpolated
in log L from the previous length. Its uncertainty comes from a paired bootstrap over inputs: the interval is the
percentile interval of the crossover over replicates (+inf where it never happens), with the share of replicates
in which it happens within the measured lengths.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

from longtasks.analysis import _deps
from longtasks.analysis.cost import DEFAULT_COST, CostOptions
from longtasks.analysis.frontier.points import CONFIG, common_tasks, cost_points, with_phases
from longtasks.analysis.frontier.resample import task_replicates
from longtasks.analysis.methods import DENSE

if TYPE_CHECKING:
    import pandas as pd

GAP_COLUMNS = [
    "phase",
    "method",
    "method_args",
    "small_model",
    "large_model",
    "length",
    "small_cost",
    "gap",
    "gap_low",
    "gap_high",
]
CONFIG_KEY = ("model", "method", "method_args", "target_compression")
"""How a configuration is named in the accuracy and cost tables (with its phase and length)."""
CROSSOVER_COLUMNS = ["phase", "method", "method_args", "small_model", "large_model", "crossover_length", "ci_low", "ci_high",
                     "p_within_grid", "below_grid", "lengths"]  # fmt: skip


def first_crossing(lengths: np.ndarray, gaps: np.ndarray) -> float:
    """First length where gap > 0, interpolated in log length; inf if never (NaN gaps count as "not ahead")."""
    ahead = np.nan_to_num(gaps, nan=-np.inf) > 0
    if not ahead.any():
        return math.inf
    j = int(np.argmax(ahead))
    if j == 0 or not np.isfinite(gaps[j - 1]):
        return float(lengths[j])
    lo, hi = math.log(lengths[j - 1]), math.log(lengths[j])
    fraction = (0.0 - gaps[j - 1]) / (gaps[j] - gaps[j - 1])
    return float(math.exp(lo + fraction * (hi - lo)))


def accuracy_at_cost(budget: float, costs: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """Accuracy (per replicate, columns = configurations) interpolated in log cost; NaN below the cheapest."""
    order = np.argsort(costs)
    costs, accuracy = np.log(costs[order]), accuracy[:, order]
    x = math.log(budget)
    if x < costs[0]:
        return np.full(accuracy.shape[0], np.nan)
    if x >= costs[-1]:
        return accuracy[:, -1]
    k = int(np.searchsorted(costs, x, side="right"))
    weight = (x - costs[k - 1]) / (costs[k] - costs[k - 1]) if costs[k] > costs[k - 1] else 1.0
    return accuracy[:, k - 1] + weight * (accuracy[:, k] - accuracy[:, k - 1])


def _panel_accuracy(frame: pd.DataFrame, replicates: dict, n_boot: int) -> dict[tuple, np.ndarray]:
    """(phase, length, model, method, method_args, compression) -> accuracy replicates averaged over the
    panel's tasks."""
    out: dict[tuple, np.ndarray] = {}
    for (panel, length), group in with_phases(frame).groupby(["panel", "length"]):
        tasks = common_tasks(group)
        sums: dict[tuple, np.ndarray] = defaultdict(lambda: np.zeros(n_boot))
        counts: dict[tuple, int] = defaultdict(int)
        wanted = set(zip(*(group[c] for c in CONFIG_KEY), strict=True))
        for model in group["model"].unique():
            for task in tasks:
                configs, values = replicates.get((model, int(length), task), ([], None))
                for i, config in enumerate(configs):
                    named = dict(zip(CONFIG, config, strict=True))
                    key = tuple(named[c] for c in CONFIG_KEY)
                    if key in wanted:
                        sums[key] += values[:, i]
                        counts[key] += 1
        for key, total in sums.items():
            if counts[key] == len(tasks):
                out[(panel, int(length), *key)] = total / len(tasks)
    return out


def _dense_key(cost: dict, phase: str, length: int, model: str) -> tuple | None:
    """The key of a model's dense point (one per model: `prepare` refuses dense runs under two settings)."""
    found = [k for k in cost if k[:4] == (phase, length, model, DENSE)]
    return found[0] if found else None


def _pair_gaps(
    phase: str,
    variant: tuple[str, str],
    small: str,
    large: str,
    lengths: list[int],
    cost: dict,
    accuracy: dict,
) -> tuple[list[int], list[np.ndarray]]:
    """Gap replicates of one (phase, method variant, small, large) at every length where both sides were
    measured."""
    kept, gaps = [], []
    for length in lengths:
        small_key = _dense_key(cost, phase, length, small)
        curve = [k for k in cost if k[:3] == (phase, length, large) and (k[3] == DENSE or k[3:5] == variant)]
        if small_key not in accuracy or not any(k[3:5] == variant for k in curve):
            continue
        costs = np.array([cost[k] for k in curve])
        values = np.column_stack([accuracy[k] for k in curve])
        kept.append(length)
        gaps.append(accuracy_at_cost(cost[small_key], costs, values) - accuracy[small_key])
    return kept, gaps


def _interval(values: np.ndarray, tail: float) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (NaN without replicates; "nearest" keeps +inf intact)."""
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return np.nan, np.nan
    low, high = np.quantile(finite, [tail, 1 - tail], method="nearest")
    return float(low), float(high)


def crossover_table(
    frame: pd.DataFrame,
    options: CostOptions = DEFAULT_COST,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(gaps per length, crossover per phase/method/model pair); both empty with fewer than two model sizes."""
    pd = _deps.pandas()
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    points = cost_points(frame, options)
    accuracy = _panel_accuracy(frame, task_replicates(frame, n_boot, seed), n_boot)
    cost = {(r.phase, r.length, r.model, r.method, r.method_args, r.target_compression): r.cost
            for r in points.itertuples()}  # fmt: skip
    sizes = points.groupby("model")["n_params"].first().dropna().sort_values()
    pairs = [(a, b) for i, a in enumerate(sizes.index) for b in sizes.index[i + 1 :] if sizes[b] > sizes[a]]
    tail = (1 - level) / 2
    gap_rows, cross_rows = [], []
    for phase, panel in points.groupby("phase"):
        lengths = sorted(int(x) for x in panel["length"].unique())
        sparse = panel[panel["method"] != DENSE]
        for variant in sorted(set(zip(sparse["method"], sparse["method_args"], strict=True))):
            for small, large in pairs:
                kept, gaps = _pair_gaps(phase, variant, small, large, lengths, cost, accuracy)
                if not kept:
                    continue
                names = {"phase": phase, "method": variant[0], "method_args": variant[1], "small_model": small,
                         "large_model": large}  # fmt: skip
                for length, gap in zip(kept, gaps, strict=True):
                    low, high = _interval(gap[1:], tail)
                    gap_rows.append({**names, "length": length, "small_cost": cost[_dense_key(cost, phase, length, small)],
                                     "gap": gap[0], "gap_low": low, "gap_high": high})  # fmt: skip
                grid = np.array(kept, float)
                crossings = np.array(
                    [first_crossing(grid, np.array([g[b] for g in gaps])) for b in range(n_boot)]
                )
                low, high = _interval(crossings[1:], tail)
                cross_rows.append({
                    **names, "crossover_length": crossings[0], "ci_low": low, "ci_high": high,
                    "p_within_grid": float(np.mean(np.isfinite(crossings[1:]))) if n_boot > 1 else np.nan,
                    "below_grid": bool(crossings[0] == grid[0]), "lengths": ",".join(str(int(x)) for x in grid),
                })  # fmt: skip
    return pd.DataFrame(gap_rows, columns=GAP_COLUMNS), pd.DataFrame(cross_rows, columns=CROSSOVER_COLUMNS)
