"""One point per (phase, length, model, method, compression): its cost on the phase's axis (prefill FLOPs or
decode memory) and its accuracy averaged over tasks (each task weighs the same, as in the paper)."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from longtasks.analysis import _deps
from longtasks.analysis.arch import ARCH_COLUMNS, Arch
from longtasks.analysis.cost import DEFAULT_COST, CostOptions
from longtasks.analysis.methods import DENSE, PHASES, phase_cost

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
CONFIG = ["model", "model_name", "n_params", "method", "target_compression"]
POINT_COLUMNS = ["phase", "length", *CONFIG, "cost_compression", "accuracy", "n_tasks", "cost"]


def with_phases(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of each paper phase, dense rows copied into both, in a `panel` column."""
    pd = _deps.pandas()
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
    known = frame.dropna(subset=list(ARCH_COLUMNS))
    if len(known) < len(frame):
        log.warning("no architecture for %s: left out of the cost analysis",
                    sorted(set(frame["model"]) - set(known["model"])))  # fmt: skip
    rows = []
    for (panel, length), group in with_phases(known).groupby(["panel", "length"]):
        tasks = common_tasks(group)
        if not tasks:
            continue
        group = group[group["task"].isin(tasks)]
        task_means = group.groupby([*CONFIG, "task"], dropna=False)["score"].mean()
        accuracy = task_means.groupby(level=list(range(len(CONFIG))), dropna=False).agg(["mean", "size"])
        for config, values in accuracy.iterrows():
            row = dict(zip(CONFIG, config, strict=True))
            cells = group[(group["model"] == row["model"]) & (group["method"] == row["method"])
                          & (group["target_compression"] == row["target_compression"])]  # fmt: skip
            achieved = float(cells["achieved_compression"].mean())
            compression = achieved if not math.isnan(achieved) else float(row["target_compression"])
            arch = Arch.from_row(cells.iloc[0])
            rows.append({
                "phase": panel, "length": int(length), **row, "cost_compression": max(compression, 1.0),
                "accuracy": float(values["mean"]), "n_tasks": int(values["size"]),
                "cost": phase_cost(arch, row["method"], panel, int(length), max(compression, 1.0), options),
            })  # fmt: skip
    return pd.DataFrame(rows, columns=POINT_COLUMNS)
