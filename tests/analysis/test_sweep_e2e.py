"""End to end on CPU: `longtasks sweep` with a tiny random model (2 methods x 2 compressions x 2 lengths, one
sample per cell), rerun (nothing left to do), then `longtasks analyze` writes every table and plot. Resuming
after a kill is tested without a model in test_sweep_runner.py."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from longtasks.cli import app

PLOTS = {"accuracy_vs_compression_tiny_qwen20", "accuracy_vs_length_tiny_qwen20", "isocost", "max_compression",
         "scaling_law_heldout"}  # fmt: skip


def sweep(model_dir, out) -> str:
    args = ["sweep", "--models", str(model_dir), "--methods", "vertical_slash,snapkv", "--compressions", "2,4",
            "--lengths", "1k,2k", "--tasks", "story_multihop", "--num-samples", "1",
            "--gen-kwargs", "max_gen_toks=64", "--device", "cpu", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_sweep_then_analyze(saved_tiny_qwen2, tmp_path):
    out = tmp_path / "sweep"
    assert "10 cell(s) run, 0 already done" in sweep(saved_tiny_qwen2, out)
    cells = sorted(p.parent for p in (out / "cells").rglob("results_*.json"))
    assert len(cells) == 10  # dense at 2 lengths + 2 methods x 2 compressions x 2 lengths
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 10 and set(table["length"]) == {1024, 2048}
    assert set(zip(table["method"], table["target_compression"], strict=True)) == {
        ("dense", 1.0),
        ("vertical_slash", 2.0),
        ("vertical_slash", 4.0),
        ("snapkv", 2.0),
        ("snapkv", 4.0),
    }
    assert (table[table["method"] != "dense"]["achieved_compression"] > 1.5).all()  # from sparse-hf's report
    assert table["n_layers"].notna().all()  # architecture from the saved model_config.json
    recorded = []  # each cell's record holds its own requests only (one model object serves every cell)
    for cell in cells:
        (results,) = cell.glob("results_*.json")
        recorded.append(json.loads(results.read_text())["config"]["sparse_compression"]["requests_by_length"])
    assert sorted(map(str, recorded)) == sorted([str({"1024": 1})] * 5 + [str({"2048": 1})] * 5)

    assert "0 cell(s) run, 10 already done" in sweep(
        saved_tiny_qwen2, out
    )  # resumable: finished cells are kept

    analysis = tmp_path / "analysis"
    result = CliRunner().invoke(
        app, ["analyze", str(out / "results.parquet"), "--out", str(analysis), "--n-boot", "20"]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((analysis / "analysis.json").read_text())
    rows = {name: len(pd.read_csv(analysis / path)) if (analysis / path).stat().st_size > 1 else 0
            for name, path in manifest["tables"].items()}  # fmt: skip
    assert rows["accuracy"] == 10
    assert rows["max_compression_tests"] == 8 and rows["max_compression"] == 4
    assert (
        rows["isocost_points"] == 2 * 2 * 3
    )  # per phase and length: dense + that phase's method at 2 compressions
    assert rows["crossover"] == 0  # one model size: noted in the manifest
    assert any("crossover" in note for note in manifest["notes"])
    for path in manifest["tables"].values():
        assert (analysis / path).is_file()
    plots = {analysis / p for p in manifest["plots"]}
    assert {p.stem for p in plots} == PLOTS and {p.suffix for p in plots} == {".png", ".svg"}
    assert all(p.stat().st_size > 2000 for p in plots)


def test_sweep_refuses_to_run_in_several_processes(tmp_path, monkeypatch):
    """Under `accelerate launch` every process would clean and write the same sweep folder."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    out = tmp_path / "sweep"
    args = ["sweep", "--models", "m", "--lengths", "1k", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "longtasks sweep runs in one process (WORLD_SIZE=2)" in " ".join(result.output.split())
    assert not out.exists()
