"""The scaling-law fitter on data simulated from the paper's Table 3 (prefill, held-out sequence length row):
logistic link, binomial noise with 100 samples per cell, the paper's grid (PAPER_NOTES §3-4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.stats import spearmanr

from longtasks.analysis.scaling import ScalingLaw, cells_for_phase, fit_law, held_out_fit

EPS, ALPHA, BETA, GAMMA = -16.92, 1.31, -1.15, -1.00
DELTA = {"quality": 0.0, "squad": 0.27, "toefl": 0.80, "cwe": 0.76, "niah": 14.67, "vt": -1.60,
         "filtering": -3.55, "multihop": -3.21, "retrieval": 1.43}  # fmt: skip
SIZES = [7.6e9, 14.7e9, 32.8e9, 72.7e9]
LENGTHS = [16384, 32768, 65536, 128000]
COMPRESSIONS = [1, 1.5, 2, 10 / 3, 5, 7.5, 10, 15, 20]
SAMPLES = 100
LAW = ScalingLaw(reference_task="quality")


@pytest.fixture(scope="module")
def cells() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    grid = pd.MultiIndex.from_product([list(DELTA), SIZES, LENGTHS, COMPRESSIONS],
                                      names=["task", "n_params", "length", "compression"]).to_frame(index=False)  # fmt: skip
    eta = (EPS + grid["task"].map(DELTA) + ALPHA * np.log(grid["n_params"]) + BETA * np.log(grid["length"])
           + GAMMA * np.log(grid["compression"]))  # fmt: skip
    grid["truth"] = 1 / (1 + np.exp(-eta))
    grid["accuracy"] = rng.binomial(SAMPLES, grid["truth"]) / SAMPLES
    grid["n"] = SAMPLES
    return grid


def test_recovers_the_published_parameters(cells):
    fitted = fit_law(cells, LAW)
    truth = {"eps": EPS, "alpha": ALPHA, "beta": BETA, "gamma": GAMMA,
             **{f"delta_{t}": d for t, d in DELTA.items() if t not in ("quality", "niah")}}  # fmt: skip
    # Every identifiable parameter lies within 4 of its standard errors, and the slopes within stated bounds.
    for name, value in truth.items():
        assert abs(fitted.params[name] - value) <= 4 * fitted.std_errors[name], name
    assert abs(fitted.params["alpha"] - ALPHA) <= 0.05
    assert abs(fitted.params["beta"] - BETA) <= 0.05
    assert abs(fitted.params["gamma"] - GAMMA) <= 0.05
    assert abs(fitted.params["eps"] - EPS) <= 1.5
    # NIAH sits at the ceiling (sigma(eta) > 0.999 in every cell): its delta is not identified, only its level.
    niah = cells[cells["task"] == "niah"]
    assert (fitted.predict(niah) > 0.99).all()
    assert fitted.r2 > 0.95


def test_held_out_metrics_match_a_direct_computation(cells):
    result = held_out_fit(cells, "length", LAW)
    assert result.held_out_value == 128000
    held = cells[cells["length"] == 128000]
    train = cells[cells["length"] != 128000]
    # The same fit done directly with statsmodels on the training cells only.
    design = LAW.design(train, sorted(DELTA), ("alpha", "beta", "gamma"))
    direct = sm.GLM(train["accuracy"], design, family=sm.families.Binomial(), var_weights=train["n"]).fit()
    predicted = 1 / (
        1 + np.exp(-(LAW.design(held, sorted(DELTA), ("alpha", "beta", "gamma")) @ direct.params))
    )
    np.testing.assert_allclose(result.predictions["predicted"].to_numpy(), predicted.to_numpy(), rtol=1e-6)
    for task, row in result.per_task.set_index("task").iterrows():
        group = held if task == "all" else held[held["task"] == task]
        p = predicted.loc[group.index].to_numpy()
        truth = group["accuracy"].to_numpy()
        assert row["n"] == len(group)
        assert row["mae"] == pytest.approx(np.mean(np.abs(truth - p)))
        if task != "niah":
            assert row["spearman_rho"] == pytest.approx(spearmanr(truth, p).statistic)
            assert row["r2"] == pytest.approx(
                1 - np.sum((truth - p) ** 2) / np.sum((truth - truth.mean()) ** 2)
            )
    # Extrapolating one length doubling from the true law is accurate: held-out MAE close to binomial noise.
    assert result.per_task.set_index("task").loc["all", "mae"] < 0.05


@pytest.mark.parametrize("axis", ["model", "compression"])
def test_every_axis_can_be_held_out(cells, axis):
    result = held_out_fit(cells, axis, LAW)
    column = {"model": "n_params", "compression": "compression"}[axis]
    assert result.held_out_value == cells[column].max()
    assert set(result.predictions[column]) == {cells[column].max()}
    assert result.per_task.set_index("task").loc["all", "mae"] < 0.05


def test_a_model_without_a_parameter_count_is_left_out_not_held_out(cells):
    """lm-eval may record no parameter count: such a model has no place on the model axis, so the largest
    known size is held out and the unknown one is neither trained on nor predicted, with a note."""
    unknown = cells.assign(n_params=cells["n_params"].where(cells["n_params"] != SIZES[1]))
    result = held_out_fit(unknown, "model", LAW)
    assert result.held_out_value == SIZES[-1]
    assert set(result.predictions["n_params"]) == {SIZES[-1]}
    assert result.per_task.set_index("task").loc["all", "n"] == (cells["n_params"] == SIZES[-1]).sum()
    assert any("with no n_params value left out" in note for note in result.notes)
    with pytest.raises(ValueError, match="the cells have 2"):
        held_out_fit(unknown[unknown["n_params"] != SIZES[0]], "model", LAW)


def test_linear_link_is_an_option_and_fits_worse_on_logistic_data(cells):
    logistic, linear = (
        fit_law(cells, LAW),
        fit_law(cells, ScalingLaw(link="linear", reference_task="quality")),
    )
    assert linear.law.link == "linear" and linear.r2 < logistic.r2
    with pytest.raises(ValueError, match="link must be one of"):
        ScalingLaw(link="cubic")


def test_constant_axes_are_dropped_and_too_few_values_refused(cells):
    one_model = cells[cells["n_params"] == SIZES[0]]
    fitted = fit_law(one_model, LAW)
    assert np.isnan(fitted.params["alpha"]) and any("alpha not estimated" in note for note in fitted.notes)
    with pytest.raises(ValueError, match="at least 3 distinct values"):
        held_out_fit(one_model[one_model["length"] <= 32768], "length", LAW)
    with pytest.raises(ValueError, match="nothing to fit"):
        fit_law(cells.assign(accuracy=0.0), LAW)


def test_cells_come_from_per_sample_rows_with_dense_in_both_phases():
    rows = pd.DataFrame({
        "model": "m", "model_name": "m", "n_params": 1e9, "task": "t", "length": 1024,
        "method": ["dense", "dense", "vertical_slash", "vertical_slash", "quest", "quest"],
        "phase": ["dense", "dense", "prefill", "prefill", "decode", "decode"],
        "target_compression": [1.0, 1.0, 4.0, 4.0, 4.0, 4.0], "achieved_compression": [1.0, 1.0, 3.5, 3.5, np.nan, np.nan],
        "score": [1.0, 0.0, 1.0, 1.0, 0.0, 0.0],
    })  # fmt: skip
    prefill = cells_for_phase(rows, "prefill")
    assert prefill[["method", "compression", "accuracy", "n"]].values.tolist() == [
        ["dense", 1.0, 0.5, 2],
        ["vertical_slash", 4.0, 1.0, 2],
    ]
    assert cells_for_phase(rows, "prefill", compression="achieved")["compression"].tolist() == [1.0, 3.5]
    with pytest.raises(ValueError, match="achieved"):
        cells_for_phase(rows, "decode", compression="achieved")
