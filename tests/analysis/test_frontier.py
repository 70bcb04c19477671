"""isoCost points, the Pareto frontier and the crossover length on constructed results."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from longtasks.analysis.arch import Arch
from longtasks.analysis.cost import CostOptions
from longtasks.analysis.frontier import cost_points, crossover_table, pareto_flags
from longtasks.analysis.frontier.crossover import accuracy_at_cost, first_crossing
from longtasks.analysis.methods import phase_cost

SMALL = Arch(28, 3584, 28, 4, 128, 18944, 152064)  # Qwen2.5-7B
LARGE = Arch(48, 5120, 40, 8, 128, 13824, 152064)  # Qwen2.5-14B
LENGTHS = [16384, 32768, 65536, 131072]
COMPRESSIONS = [5.0, 10.0, 20.0]
DOCS = 40


def rows(
    model: str, arch: Arch, params: float, method: str, compression: float, accuracy: float
) -> list[dict]:
    out = []
    for length in LENGTHS:
        for task in ("a", "b"):
            correct = round(accuracy * DOCS)
            for i in range(DOCS):
                out.append({
                    "model": model, "model_name": model, "n_params": params, **arch.to_dict(), "task": task,
                    "length": length, "sample_id": f"{task}-{length}-{i}", "doc_hash": f"{task}{length}{i}",
                    "method": method, "phase": {"dense": "dense", "quest": "decode"}.get(method, "prefill"),
                    "target_compression": compression, "achieved_compression": math.nan, "score": float(i < correct),
                })  # fmt: skip
    return out


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    data = rows("small", SMALL, 7.6e9, "dense", 1.0, 0.5) + rows("large", LARGE, 14.7e9, "dense", 1.0, 0.9)
    for c in COMPRESSIONS:
        data += rows("large", LARGE, 14.7e9, "vertical_slash", c, 0.8) + rows(
            "small", SMALL, 7.6e9, "vertical_slash", c, 0.3
        )
    return pd.DataFrame(data)


def test_points_average_tasks_and_cost_each_phase(frame):
    points = cost_points(frame)
    assert set(points["phase"]) == {"prefill", "decode"}
    decode = points[points["phase"] == "decode"]
    assert set(decode["method"]) == {"dense"}  # no decode method ran: only the dense baselines
    one = points[(points["phase"] == "prefill") & (points["model"] == "large") & (points["length"] == 65536)
                 & (points["target_compression"] == 10.0)].iloc[0]  # fmt: skip
    assert one["accuracy"] == pytest.approx(0.8) and one["n_tasks"] == 2
    assert one["cost"] == pytest.approx(phase_cost(LARGE, "vertical_slash", "prefill", 65536, 10.0))


def test_crossover_is_the_first_length_where_the_large_sparse_model_is_affordable(frame):
    gaps, crossover = crossover_table(frame, n_boot=200)
    row = crossover[(crossover["phase"] == "prefill") & (crossover["method"] == "vertical_slash")].iloc[0]
    assert (row["small_model"], row["large_model"]) == ("small", "large")
    # Independent computation: the large model is at 0.8-0.9 whenever it can match the small dense cost.
    affordable = [L for L in LENGTHS
                  if min(phase_cost(LARGE, "vertical_slash", "prefill", L, c) for c in COMPRESSIONS)
                  <= phase_cost(SMALL, "dense", "prefill", L, 1.0)]  # fmt: skip
    assert affordable and affordable[0] > LENGTHS[0]  # the test means something: not affordable at 16k
    assert row["crossover_length"] == affordable[0]
    assert row["p_within_grid"] == 1.0
    panel = gaps[(gaps["phase"] == "prefill")].set_index("length")["gap"]
    assert np.isnan(panel[LENGTHS[0]]) and (panel[affordable] >= 0.3 - 1e-9).all()


def test_no_crossover_without_two_model_sizes(frame):
    gaps, crossover = crossover_table(frame[frame["model"] == "large"], n_boot=10)
    assert gaps.empty and crossover.empty


def test_first_crossing_interpolates_in_log_length():
    lengths = np.array([1000.0, 4000.0, 16000.0])
    assert first_crossing(lengths, np.array([-0.2, -0.1, 0.1])) == pytest.approx(8000.0)
    assert first_crossing(lengths, np.array([0.1, 0.2, 0.3])) == 1000.0
    assert first_crossing(lengths, np.array([-0.1, -0.1, 0.0])) == math.inf
    assert first_crossing(lengths, np.array([np.nan, 0.2, 0.3])) == 4000.0


def test_accuracy_at_cost_interpolates_in_log_cost_and_refuses_below_the_cheapest():
    costs, acc = np.array([100.0, 10.0]), np.array([[0.9, 0.5]])
    assert accuracy_at_cost(math.sqrt(1000.0), costs, acc)[0] == pytest.approx(0.7)
    assert accuracy_at_cost(1000.0, costs, acc)[0] == 0.9
    assert np.isnan(accuracy_at_cost(5.0, costs, acc)[0])


def test_pareto_frontier_on_hand_points():
    points = pd.DataFrame({"phase": "prefill", "length": 1, "cost": [1.0, 2.0, 3.0, 2.5, 1.0],
                           "accuracy": [0.2, 0.5, 0.9, 0.4, 0.1]})  # fmt: skip
    assert pareto_flags(points)["on_frontier"].tolist() == [True, True, True, False, False]


def test_cost_options_change_the_points(frame):
    base = cost_points(frame)
    whole = cost_points(frame, CostOptions(convention="attention"))
    sparse = (base["method"] != "dense").to_numpy()
    assert (whole["cost"].to_numpy()[sparse] < base["cost"].to_numpy()[sparse]).all()
