"""Fit a scaling law to cells with statsmodels' GLM (binomial quasi-likelihood weighted by the samples per
cell for the logistic link; weighted least squares for the linear one)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from longtasks.analysis import _deps
from longtasks.analysis.scaling.law import DEFAULT_LAW, ScalingLaw

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class FittedLaw:
    law: ScalingLaw
    tasks: list[str]
    features: tuple[str, ...]
    params: dict[str, float]
    std_errors: dict[str, float]
    r2: float
    """R^2 of the fitted accuracies on the training cells."""
    n_cells: int
    notes: list[str] = field(default_factory=list)

    def predict(self, cells: pd.DataFrame) -> np.ndarray:
        unknown = sorted(set(cells["task"]) - set(self.tasks))
        if unknown:
            raise ValueError(f"the law was fitted without task(s) {unknown}; it cannot predict them")
        design = self.law.design(cells, self.tasks, self.features)
        eta = design.to_numpy() @ np.array([self.params[name] for name in design.columns])
        return self.law.inverse_link(eta)


def r_squared(truth: np.ndarray, predicted: np.ndarray) -> float:
    truth, predicted = np.asarray(truth, float), np.asarray(predicted, float)
    total = float(np.sum((truth - truth.mean()) ** 2))
    return float("nan") if total == 0 else 1.0 - float(np.sum((truth - predicted) ** 2)) / total


MISSING_HINT = {
    "n_params": "lm-eval recorded no parameter count (model_num_parameters) and no config.json gave the "
    "architecture to estimate it from",
}
"""Why a covariate can be missing, said where a fit leaves it out."""


def identifiable_features(
    cells: pd.DataFrame, law: ScalingLaw, features: tuple[str, ...] | None = None
) -> tuple[tuple[str, ...], list[str]]:
    """The law's features whose covariate varies in these cells (a constant one cannot be estimated)."""
    from longtasks.analysis.scaling.law import COVARIATES

    kept, notes = [], []
    for name in law.features if features is None else features:
        if cells[COVARIATES[name]].nunique() > 1:
            kept.append(name)
        else:
            notes.append(f"{name} not estimated: {COVARIATES[name]} takes one value in the fitted cells")
    return tuple(kept), notes


def _present_features(cells: pd.DataFrame, law: ScalingLaw) -> tuple[tuple[str, ...], list[str]]:
    """The law's features whose covariate some cell has; the others are dropped with a note saying why."""
    from longtasks.analysis.scaling.law import COVARIATES

    kept, notes = [], []
    for name in law.features:
        column = COVARIATES[name]
        if cells[column].notna().any():
            kept.append(name)
        else:
            hint = MISSING_HINT.get(column)
            notes.append(
                f"{name} not estimated: no cell has a {column} value" + (f" ({hint})" if hint else "")
            )
    return tuple(kept), notes


def _missing_message(cells: pd.DataFrame, used: list[str], n_complete: int) -> str:
    """Which covariate is missing, and for which models, when too few cells have them all."""
    parts = []
    for column in used:
        lacking = cells[cells[column].isna()]
        if lacking.empty:
            continue
        models = sorted({str(m) for m in lacking["model"]}) if "model" in lacking else []
        hint = MISSING_HINT.get(column)
        parts.append(f"{column} is missing for {', '.join(models) or f'{len(lacking)} cell(s)'}"
                     + (f" ({hint})" if hint else ""))  # fmt: skip
    return f"only {n_complete} of {len(cells)} cells have every covariate: " + "; ".join(parts)


def fit_law(cells: pd.DataFrame, law: ScalingLaw = DEFAULT_LAW) -> FittedLaw:
    """Fit `law` to cells with columns task, n_params, length, compression, accuracy, n. A covariate no cell
    has (e.g. no model's parameter count) drops its slope with a note."""
    sm = _deps.require("statsmodels.api")
    from longtasks.analysis.scaling.law import COVARIATES

    present, notes = _present_features(cells, law)
    used = [COVARIATES[name] for name in present]
    complete = cells.dropna(subset=[*used, "accuracy"])
    if len(complete) < len(cells):
        notes.append(f"{len(cells) - len(complete)} cell(s) without {', '.join(used)} left out")
    if len(complete) < 3 <= len(cells):
        raise ValueError(_missing_message(cells, used, len(complete)))
    cells = complete
    tasks = sorted(cells["task"].unique())
    if len(cells) < 3:
        raise ValueError(f"a scaling law needs at least 3 cells, got {len(cells)}")
    if cells["accuracy"].nunique() == 1:
        raise ValueError(f"accuracy is {cells['accuracy'].iloc[0]:g} in every cell: there is nothing to fit")
    features, dropped = identifiable_features(cells, law, present)
    notes += dropped
    design = law.design(cells, tasks, features)
    if len(cells) <= design.shape[1]:
        raise ValueError(f"{len(cells)} cells cannot determine {design.shape[1]} parameters")
    model = sm.GLM(
        cells["accuracy"].to_numpy(float), design, family=law.family(), var_weights=cells["n"].to_numpy(float)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = model.fit()
    notes += sorted(
        {str(w.message).splitlines()[0] for w in caught if "separation" in str(w.message).lower()}
    )
    params = {name: float(value) for name, value in result.params.items()}
    errors = {name: float(value) for name, value in result.bse.items()}
    for name in law.features:
        params.setdefault(name, float("nan"))
        errors.setdefault(name, float("nan"))
    fitted = FittedLaw(law=law, tasks=tasks, features=features, params=params, std_errors=errors,
                       r2=float("nan"), n_cells=len(cells), notes=notes)  # fmt: skip
    fitted.r2 = r_squared(cells["accuracy"].to_numpy(float), fitted.predict(cells))
    return fitted
