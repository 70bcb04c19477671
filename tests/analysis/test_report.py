"""`analyze` on a simulated per-sample table: every table and plot is written, with the right rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from longtasks.analysis.arch import Arch
from longtasks.analysis.options import AnalysisOptions
from longtasks.analysis.report import analyze
from longtasks.analysis.store import COLUMNS

MODELS = {"qwen-7b": (7.6e9, Arch(28, 3584, 28, 4, 128, 18944, 152064)),
          "qwen-14b": (14.7e9, Arch(48, 5120, 40, 8, 128, 13824, 152064))}  # fmt: skip
LENGTHS = [16384, 32768, 65536]
METHODS = {"vertical_slash": "prefill", "quest": "decode"}
COMPRESSIONS = [2.0, 5.0, 10.0]
TASKS = {"story_multihop": 0.0, "ruler_vt": -1.0}
DOCS = 30


def simulated() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    configs = [("dense", 1.0)] + [(m, c) for m in METHODS for c in COMPRESSIONS]
    for model, (params, arch) in MODELS.items():
        for length in LENGTHS:
            for task, delta in TASKS.items():
                base = rng.random(DOCS)  # per-input difficulty shared by every configuration
                for method, c in configs:
                    eta = -16 + delta + 1.3 * math.log(params) - 1.1 * math.log(length) - 0.9 * math.log(c)
                    p = 1 / (1 + math.exp(-eta))
                    for i in range(DOCS):
                        rows.append({
                            "run": "sim", "model": model, "model_name": model, "n_params": params, **arch.to_dict(),
                            "task": task, "length": length, "sample_id": f"{task}-{length}-{i}",
                            "doc_hash": f"{model}{task}{length}{i}", "method": method,
                            "phase": METHODS.get(method, "dense"), "target_compression": c,
                            "achieved_compression": c, "method_args": "", "chat": True,
                            "score": float(base[i] < p), "parsed": 1.0,
                        })  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis")
    return analyze(simulated(), out, AnalysisOptions(n_boot=50)), out


def test_every_table_is_written_with_the_right_rows(outputs):
    result, out = outputs
    tables = {name: pd.read_csv(path) for name, path in result.tables.items() if path.stat().st_size > 1}
    cells = len(MODELS) * len(LENGTHS) * len(TASKS)
    assert len(tables["accuracy"]) == cells * (1 + len(METHODS) * len(COMPRESSIONS))
    assert len(tables["max_compression_tests"]) == cells * len(METHODS) * len(COMPRESSIONS)
    assert len(tables["max_compression"]) == cells * len(METHODS)
    assert len(tables["max_compression_summary"]) == len(MODELS) * len(LENGTHS) * len(METHODS)
    # isoCost: per phase and length, each model's dense point + its compressions of that phase's method.
    assert len(tables["isocost_points"]) == 2 * len(LENGTHS) * len(MODELS) * (1 + len(COMPRESSIONS))
    assert tables["isocost_points"]["on_frontier"].any()
    assert len(tables["crossover"]) == len(METHODS)  # one model pair, one method per phase
    assert len(tables["crossover_gaps"]) == len(METHODS) * len(LENGTHS)
    held = tables["scaling_heldout"]
    # Held-out compression (4 values with dense) per phase; 2 models / 3 lengths cannot hold out model or length.
    assert set(zip(held["phase"], held["held_out_axis"], strict=True)) == {("prefill", "length"), ("decode", "length"),
                                                                           ("prefill", "compression"), ("decode", "compression")}  # fmt: skip
    assert set(held["task"]) == {*TASKS, "all"}
    params = tables["scaling_params"]
    full = params[(params["phase"] == "prefill") & (params["held_out_axis"] == "none")].set_index("parameter")
    assert full.loc["gamma", "estimate"] < 0 < full.loc["alpha", "estimate"]
    manifest = json.loads((out / "analysis.json").read_text())
    assert any("held-out model" in note for note in manifest["notes"])


def test_every_plot_is_written_as_png_and_svg(outputs):
    result, _ = outputs
    stems = {path.stem for path in result.plots}
    assert stems == {"accuracy_vs_compression_qwen-7b", "accuracy_vs_compression_qwen-14b", "accuracy_vs_length_qwen-7b",
                     "accuracy_vs_length_qwen-14b", "isocost", "max_compression", "scaling_law_heldout"}  # fmt: skip
    for path in result.plots:
        assert path.exists() and path.stat().st_size > 5000, path
    assert {path.suffix for path in result.plots} == {".png", ".svg"}


def test_models_sharing_a_last_path_part_get_their_own_plots(tmp_path):
    """Two checkpoints named .../final must not overwrite each other's figure; unique names stay short."""
    from longtasks.analysis.plots.accuracy import accuracy_vs_compression
    from longtasks.analysis.plots.style import model_names

    names = model_names(["/ckpts/run-a/final", "/ckpts/run-b/final", "Qwen/Qwen2.5-7B"])
    assert names["Qwen/Qwen2.5-7B"] == ("Qwen2.5-7B", "Qwen2.5-7B")
    assert names["/ckpts/run-a/final"] == ("/ckpts/run-a/final", "ckpts_run-a_final")
    rows = [
        {"model": model, "task": "t", "length": 1024, "method": method, "target_compression": c, "score": 1.0}
        for model in ("/ckpts/run-a/final", "/ckpts/run-b/final")
        for method, c in (("dense", 1.0), ("vs", 5.0))
    ]
    paths = accuracy_vs_compression(pd.DataFrame(rows), tmp_path)
    assert len(set(paths)) == len(paths) == 4 and all(path.exists() for path in paths)
