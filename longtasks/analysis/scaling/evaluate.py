"""Held-out-axis evaluation (the paper's Tables 4 and 7): fit without the largest value of one axis, predict
it, and report per task the MAE, Spearman's rho (with its p-value) and R^2 of predicted vs true accuracy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from longtasks.analysis import _deps
from longtasks.analysis.scaling.fit import MISSING_HINT, FittedLaw, fit_law, r_squared
from longtasks.analysis.scaling.law import DEFAULT_LAW, ScalingLaw

if TYPE_CHECKING:
    import pandas as pd

HELD_OUT_AXES = {"model": "n_params", "length": "length", "compression": "compression"}
"""Axis name -> cell column whose largest value is held out."""


@dataclass
class HeldOutResult:
    axis: str
    held_out_value: float
    fitted: FittedLaw
    predictions: pd.DataFrame
    """Held-out cells with `predicted` next to their true `accuracy`."""
    per_task: pd.DataFrame
    """task, n, mae, spearman_rho, spearman_p, r2 (plus an "all" row)."""
    notes: list[str] = field(default_factory=list)


def _metrics(group: pd.DataFrame) -> dict[str, float]:
    stats = _deps.require("scipy.stats")
    truth, predicted = group["accuracy"].to_numpy(float), group["predicted"].to_numpy(float)
    rho, p = (np.nan, np.nan)
    if len(group) >= 3 and np.ptp(truth) > 0 and np.ptp(predicted) > 0:
        result = stats.spearmanr(truth, predicted)
        rho, p = float(result.statistic), float(result.pvalue)
    return {"n": len(group), "mae": float(np.mean(np.abs(truth - predicted))), "spearman_rho": rho,
            "spearman_p": p, "r2": r_squared(truth, predicted)}  # fmt: skip


def held_out_fit(cells: pd.DataFrame, axis: str, law: ScalingLaw = DEFAULT_LAW) -> HeldOutResult:
    """Fit on every cell but those at the largest value of `axis`; evaluate on those."""
    pd = _deps.pandas()
    if axis not in HELD_OUT_AXES:
        raise ValueError(f"held-out axis must be one of {sorted(HELD_OUT_AXES)}, got {axis!r}")
    column = HELD_OUT_AXES[axis]
    # e.g. lm-eval recorded no parameter count: such cells have no place on the axis
    unknown = int(cells[column].isna().sum())
    if unknown and unknown == len(cells):
        hint = MISSING_HINT.get(column)
        raise ValueError(f"no cell has a {column} value" + (f" ({hint})" if hint else ""))
    cells = cells[cells[column].notna()]
    values = sorted(cells[column].unique())
    if len(values) < 3:
        raise ValueError(
            f"holding out the largest {axis} needs at least 3 distinct values of {column} (2 to fit the slope, "
            f"1 to predict); the cells have {len(values)}: {[float(v) for v in values]}"
        )
    top = values[-1]
    left_out = [f"{unknown} cell(s) with no {column} value left out"] if unknown else []
    train, test = cells[cells[column] != top], cells[cells[column] == top]
    fitted = fit_law(train, law)
    test = test[test["task"].isin(fitted.tasks)].copy()
    test["predicted"] = fitted.predict(test)
    rows = [{"task": task, **_metrics(group)} for task, group in test.groupby("task")]
    rows.append({"task": "all", **_metrics(test)})
    return HeldOutResult(axis=axis, held_out_value=float(top), fitted=fitted, predictions=test,
                         per_task=pd.DataFrame(rows), notes=[*left_out, *fitted.notes])  # fmt: skip
