"""The functional form of a scaling law: which log-covariates enter the linear predictor, and the link.

Pluggable: `features` picks covariates from `COVARIATES` (ln N, ln L, ln C by default, the paper's inferred
form), `link` is "logistic" (accuracy = sigma(eta), the reading that makes the published parameters plausible)
or "linear" (accuracy = eta). Task effects are dummies against a reference task absorbed in the intercept, as
QuALITY is in the paper's Table 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from longtasks.analysis import _deps

if TYPE_CHECKING:
    import pandas as pd

COVARIATES = {"alpha": "n_params", "beta": "length", "gamma": "compression"}
"""Slope name -> cell column whose natural log it multiplies."""
LINKS = ("logistic", "linear")


@dataclass(frozen=True)
class ScalingLaw:
    link: str = "logistic"
    features: tuple[str, ...] = ("alpha", "beta", "gamma")
    reference_task: str | None = None
    """Task absorbed into the intercept; None = the first task alphabetically."""

    def __post_init__(self) -> None:
        if self.link not in LINKS:
            raise ValueError(f"link must be one of {LINKS}, got {self.link!r}")
        unknown = [f for f in self.features if f not in COVARIATES]
        if unknown:
            raise ValueError(f"unknown scaling-law feature(s) {unknown}; choose from {sorted(COVARIATES)}")

    def family(self) -> Any:
        """The statsmodels GLM family: binomial with logit link (quasi-likelihood for fractional scores),
        or Gaussian with identity link (weighted least squares)."""
        sm = _deps.require("statsmodels.api")
        if self.link == "logistic":
            return sm.families.Binomial(link=sm.families.links.Logit())
        return sm.families.Gaussian(link=sm.families.links.Identity())

    def reference(self, tasks: list[str]) -> str:
        if self.reference_task is None:
            return sorted(tasks)[0]
        if self.reference_task not in tasks:
            raise ValueError(f"reference task {self.reference_task!r} is not among the tasks {sorted(tasks)}")
        return self.reference_task

    def design(self, cells: pd.DataFrame, tasks: list[str], features: tuple[str, ...]) -> pd.DataFrame:
        """The design matrix: intercept eps, one delta_<task> dummy per non-reference task, the log covariates."""
        pd = _deps.pandas()
        reference = self.reference(tasks)
        columns: dict[str, Any] = {"eps": np.ones(len(cells))}
        for task in sorted(tasks):
            if task != reference:
                columns[f"delta_{task}"] = (cells["task"].to_numpy() == task).astype(float)
        for name in features:
            columns[name] = np.log(cells[COVARIATES[name]].to_numpy(dtype=float))
        return pd.DataFrame(columns, index=cells.index)

    def inverse_link(self, eta: np.ndarray) -> np.ndarray:
        if self.link == "logistic":
            return 1.0 / (1.0 + np.exp(-eta))
        return eta


DEFAULT_LAW = ScalingLaw()
"""The defaults (a shared instance: the options are frozen)."""
