"""One point per (phase, length, model, method, compression): its cost on the phase's axis (prefill FLOPs or
decode memory) and its accuracy averaged over tasks (each task weighs the same, as in the paper)."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from longtasks.analysis import _deps
from longtasks.analysis.arch import ARCH_COLUMNS, WINDOW_COLUMNS, Arch
from longtasks.analysis.cost import DEFAULT_COST, CostOptions
from longtasks.analysis.methods import DENSE, PHASES, phase_cost

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
CONFIG = ["model", "model_name", "n_params", "method", "target_compression", "method_args"]
"""One configuration: a method run with other arguments (e.g. Quest without page sharing) is its own point."""
POINT_COLUMNS = ["phase", "length", *CONFIG, "cost_compression", "accuracy", "n_tasks", "cost"]


def with_method_args(frame: pd.DataFrame) -> pd.DataFrame:
    """`method_args` as text ("" where the column is absent or empty)."""
    args = frame["method_args"].fillna("").astype(str) if "method_args" in frame else ""
    return frame.assign(method_args=args)


def with_phases(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of each paper phase, dense rows copied into both, in a `panel` column."""
    pd = _deps.pandas()
    frame = with_method_args(frame)
    parts = [
        frame[(frame["phase"] == phase) | (frame["method"] == DENSE)].assign(panel=phase) for phase in PHASES
    ]
    return pd.concat(parts, ignore_index=True)


def common_tasks(frame: pd.DataFrame) -> list[str]:
    """Tasks measured by every configuration in `frame` (averages over other task sets are not comparable)."""
    per_config = frame.groupby(CONFIG, dropna=False)["task"].agg(lambda tasks: frozenset(tasks))
    shared = frozenset.intersection(*per_config) if len(per_config) else frozenset()
    return sorted(shared)


def cost_points(frame: pd.DataFrame, options: CostOptions = DEFAULT_COST) -> pd.DataFrame:
    """The isoCost scatter's points. Cost uses the achieved compression where the run reported it, else the
    target; models without architecture numbers are left out (with a warning)."""
    pd = _deps.pandas()
    known = frame.dropna(subset=[column for column in ARCH_COLUMNS if column not in WINDOW_COLUMNS])
    if len(known) < len(frame):
        log.warning("no architecture for %s: left out of the cost analysis",
                    sorted(set(frame["model"]) - set(known["model"])))  # fmt: skip
    rows = []
    for (panel, length), group in with_phases(known).groupby(["panel", "length"]):
        tasks = common_tasks(group)
        if not tasks:
            continue
        group = group[group["task"].isin(tasks)]
        firsts = {column: (column, "first") for column in ARCH_COLUMNS}
        per_task = group.groupby([*CONFIG, "task"], dropna=False).agg(
            score=("score", "mean"), achieved=("achieved_compression", "mean"), **firsts
        )
        per_config = per_task.groupby(level=list(range(len(CONFIG))), dropna=False).agg(
            accuracy=("score", "mean"), n_tasks=("score", "size"), achieved=("achieved", "mean"), **firsts
        )
        for record in per_config.reset_index().to_dict("records"):
            row = {key: record[key] for key in CONFIG}
            measured = float(record["achieved"])
            compression = max(measured if not math.isnan(measured) else float(row["target_compression"]), 1.0)
            rows.append({
                "phase": panel, "length": int(length), **row, "cost_compression": compression,
                "accuracy": float(record["accuracy"]), "n_tasks": int(record["n_tasks"]),
                "cost": phase_cost(Arch.from_row(record), row["method"], panel, int(length), compression, options),
            })  # fmt: skip
    return pd.DataFrame(rows, columns=POINT_COLUMNS)
