"""Audit of the analysis (round 3): results of `./model` runs found, NaN scores never passing a test, hash-less
samples paired by id, duplicated and variant runs kept apart, bad options refused before any work, missing
parameter counts estimated, one model per local path, and a crossover bootstrap paired across models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from longtasks.analysis.maxcomp import TestOptions, compression_tests, drop_p_value
from longtasks.analysis.options import AnalysisOptions
from longtasks.analysis.report import analyze
from longtasks.analysis.store import COLUMNS, build_table, find_runs, load_table
from longtasks.analysis.sweep import SweepSpec, run_sweep
from longtasks.analysis.sweep import runner as runner_module
from longtasks.analysis.sweep.grid import Cell
from longtasks.cli import app

QWEN7 = {"n_layers": 28, "hidden_size": 3584, "n_heads": 28, "n_kv_heads": 4, "head_dim": 128,
         "intermediate_size": 18944, "vocab_size": 152064}  # fmt: skip
QWEN14 = {
    **QWEN7,
    "n_layers": 48,
    "hidden_size": 5120,
    "n_heads": 40,
    "n_kv_heads": 8,
    "intermediate_size": 13824,
}
SIZES = {"qwen-7b": (7.6e9, QWEN7), "qwen-14b": (14.7e9, QWEN14)}
FAST = AnalysisOptions(n_boot=20, plots=False)


def row(model: str, method: str, compression: float, i: int, score: float, **extra) -> dict:
    params, arch = SIZES.get(model, (7.6e9, QWEN7))
    phase = {"dense": "dense", "quest": "decode"}.get(method, "prefill")
    return {
        "run": "r", "model": model, "model_name": Path(model).name, "n_params": params, **arch,
        "sliding_window": 0, "n_local_layers": 0, "task": "t", "length": 4096, "sample_id": f"s{i}",
        "doc_hash": f"h{i}", "method": method, "phase": phase, "target_compression": float(compression),
        "achieved_compression": float(compression), "method_args": "", "chat": False, "score": float(score),
        "parsed": 1.0, **extra,
    }  # fmt: skip


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)[[c for c in COLUMNS if c in rows[0]]]


def grid(model: str = "qwen-7b", n: int = 12, drop: int = 4, **extra) -> list[dict]:
    """A dense run (every input right) and quest at 5x wrong on the first `drop` inputs."""
    dense = [row(model, "dense", 1.0, i, 1.0, **extra) for i in range(n)]
    sparse = [row(model, "quest", 5.0, i, float(i >= drop), **extra) for i in range(n)]
    return dense + sparse


def tables(out: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_csv(p) for p in (out / "tables").glob("*.csv") if p.stat().st_size > 1}


def notes(out: Path) -> list[str]:
    return json.loads((out / "analysis.json").read_text())["notes"]


def write_run(folder: Path, pretrained: str, method: str, compression: float, scores: list[float]) -> None:
    """An lm-eval output folder (results JSON + samples JSONL) with the fields the store reads."""
    folder.mkdir(parents=True, exist_ok=True)
    results = {"results": {"t": {}}, "configs": {"t": {}}, "n-samples": {"t": {"effective": len(scores)}},
               "config": {"model": "sparse-hf", "model_args": {"pretrained": pretrained, "method": method,
                                                                "compression": compression}}, "date": 1.0}  # fmt: skip
    (folder / "results_x.json").write_text(json.dumps(results))
    lines = [json.dumps({"doc_id": i, "doc": {"id": f"s{i}", "length": 1024}, "doc_hash": f"h{i}", "score": s})
             for i, s in enumerate(scores)]  # fmt: skip
    (folder / "samples_t_x.jsonl").write_text("\n".join(lines) + "\n")


# ---- 1. `./model` results are found; old sweep folders still resume ---------------------------------------


@pytest.fixture
def fake_lm_eval(monkeypatch):
    evaluated = []

    def build_lm(spec, cell, longest, tokenizers=None):
        return object(), runner_module.model_args_for(spec, cell)

    def evaluate_cell(lm, cell, spec, model_args):
        evaluated.append(cell)
        samples = [{"doc": {"id": f"s{i}", "task": "t", "length": cell.length}, "doc_hash": f"h{i}",
                    "score": 1.0} for i in range(2)]  # fmt: skip
        return {"results": {"t": {}}, "configs": {"t": {}}, "n-samples": {"t": {"effective": 2}},
                "config": {"model": spec.model_type, "model_args": model_args}, "date": 1.0,
                "samples": {"t": samples}}  # fmt: skip

    monkeypatch.setattr(runner_module, "build_lm", build_lm)
    monkeypatch.setattr(runner_module, "evaluate_cell", evaluate_cell)
    return evaluated


def test_a_sweep_of_a_relative_model_path_reads_its_cells_and_resumes(fake_lm_eval, tmp_path):
    spec = SweepSpec(
        models=("./m",),
        methods=(),
        compressions=(),
        lengths=(1024,),
        tasks=("t",),
        num_samples=2,
        model_type="hf",
    )
    first = run_sweep(spec, tmp_path)
    assert first.table is not None and len(pd.read_parquet(first.table)) == 2
    assert [p.name for p in (tmp_path / "cells").iterdir()] == ["m"]  # never a hidden folder
    # A folder an earlier version named `.__m` is still a finished cell (skipped) and still read.
    (tmp_path / "cells" / "m").rename(tmp_path / "cells" / ".__m")
    second = run_sweep(spec, tmp_path)
    assert not second.done and len(second.skipped) == 1 and len(fake_lm_eval) == 1
    assert set(pd.read_parquet(second.table)["model"]) == {"m"}


def test_cell_folders_never_start_with_a_dot_and_never_leave_the_cells_folder():
    names = {
        m: Cell(m, "dense", 1.0, 1024).relative_dir.parts[0]
        for m in ("./m", "../m", "/abs/m/", "org/m", "..")
    }
    assert names == {"./m": "m", "../m": "up__m", "/abs/m/": "abs__m", "org/m": "org__m", "..": "up"}
    assert runner_module.finished_dir(Path("/nonexistent"), Cell("..", "dense", 1.0, 1024)) is None


def test_lm_eval_folders_of_a_relative_model_are_read_but_unfinished_cells_are_not(tmp_path):
    write_run(tmp_path / ".__smollm2-ref", "./smollm2-ref", "dense", 1.0, [1.0, 0.0])  # lm-eval's own name
    write_run(tmp_path / "cells" / ".tmp-L1024", "./smollm2-ref", "quest", 5.0, [1.0, 0.0])
    runs = list(find_runs([tmp_path]))
    assert [run.results_path.parent.name for run in runs] == [".__smollm2-ref"]


# ---- 2. a NaN score never makes a test pass -----------------------------------------------------------------


@pytest.mark.parametrize("test", ["paired-t", "welch", "paired-permutation", "paired-bootstrap"])
def test_a_nan_score_is_left_out_not_read_as_no_drop(test):
    options = TestOptions(test=test, n_resamples=200)
    dense, sparse = np.ones(10), np.zeros(10)
    sparse[0] = np.nan
    p = drop_p_value(dense, sparse, options)
    expected = (
        drop_p_value(dense[1:], sparse[1:], options)
        if test != "welch"
        else drop_p_value(dense, sparse[1:], options)
    )
    assert p == pytest.approx(expected) and p < 0.05
    assert np.isnan(drop_p_value(np.ones(3), np.array([0.0, np.nan, np.nan]), options))  # untestable: NaN
    batched = drop_p_value(np.ones((2, 10)), np.stack([sparse, np.zeros(10)]), options)
    assert (batched < 0.05).all()


def test_nan_scores_are_counted_and_an_untestable_compression_never_passes(tmp_path):
    rows = grid(n=6, drop=6)
    for r in rows:
        if r["method"] == "quest" and r["sample_id"] != "s0":
            r["score"] = math.nan  # 1 finite pair left: no test
    tests = compression_tests(frame(rows))
    assert tests[["n_nonfinite", "tested", "significant_drop"]].values.tolist() == [[5, False, False]]
    analyze(frame(rows), tmp_path / "a", FAST)
    maximum = tables(tmp_path / "a")["max_compression"]
    assert maximum["max_compression"].tolist() == [1.0]
    assert any("5 sample score(s) were not finite" in n for n in notes(tmp_path / "a"))


# ---- 3. samples without a doc hash pair by sample id, never by row order ------------------------------------


def test_hash_less_samples_pair_by_sample_id_after_a_csv_round_trip(tmp_path):
    rows = grid(n=12, drop=4)
    with_hash = compression_tests(frame(rows))
    shuffled = frame(rows).sample(frac=1.0, random_state=0).assign(doc_hash="")
    path = tmp_path / "r.csv"
    shuffled.to_csv(path, index=False)  # empty cells read back as NaN
    tests = compression_tests(load_table(path))
    raw = compression_tests(pd.read_csv(path))  # also without load_table's cleaning
    assert tests["p_value"].iloc[0] == pytest.approx(with_hash["p_value"].iloc[0])
    assert raw["p_value"].iloc[0] == pytest.approx(with_hash["p_value"].iloc[0])
    assert tests["n_pairs"].iloc[0] == 12


def test_two_samples_with_one_input_key_are_refused(tmp_path):
    rows = grid(n=6)
    rows[1]["doc_hash"] = rows[0]["doc_hash"]
    with pytest.raises(ValueError, match=r"input key.*'h0'.*must be unique"):
        compression_tests(frame(rows))
    with pytest.raises(ValueError, match=r"input key.*'h0'"):
        analyze(frame(rows), tmp_path / "a", FAST)
    assert not (tmp_path / "a").exists()


# ---- 4. duplicated inputs and method variants -------------------------------------------------------------


def test_two_inputs_sharing_a_dense_run_count_it_once(tmp_path):
    a = frame(grid())
    b = a.assign(
        method=a["method"].replace("quest", "vertical_slash"), phase=a["phase"].replace("decode", "prefill")
    )
    for name, part in (("a", a), ("b", b)):
        part.to_parquet(tmp_path / f"{name}.parquet")
    for test in ("paired-t", "welch"):
        out = tmp_path / f"o-{test}"
        args = ["analyze", str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet"), "--no-plots",
                "--n-boot", "10", "--test", test, "--out", str(out)]  # fmt: skip
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert tables(out)["max_compression_tests"]["n_dense"].tolist() == [12, 12]
        assert any("measured more than once" in n for n in notes(out))


def test_method_variants_are_kept_apart(tmp_path):
    plain = grid(drop=0)
    variant = [row("qwen-7b", "quest", 5.0, i, 0.0, method_args='{"share_pages": false}') for i in range(12)]
    analyze(frame(plain + variant), tmp_path / "a", FAST)
    result = tables(tmp_path / "a")
    quest = result["accuracy"][result["accuracy"]["method"] == "quest"].fillna({"method_args": ""})
    assert sorted(zip(quest["method_args"], quest["accuracy"], strict=True)) == [
        ("", 1.0), ('{"share_pages": false}', 0.0)]  # fmt: skip
    assert len(result["max_compression_tests"]) == 2 and len(result["isocost_points"]) == 2 * 1 + 2


def test_dense_runs_under_two_settings_are_refused_by_name(tmp_path):
    rows = grid() + [row("qwen-7b", "dense", 1.0, 100 + i, 1.0, method_args='{"x": 1}') for i in range(3)]
    with pytest.raises(ValueError, match=r"dense runs of qwen-7b differ.*\{\"x\": 1\}"):
        analyze(frame(rows), tmp_path / "a", FAST)


def test_a_failed_analysis_leaves_no_output_and_keeps_an_earlier_one(tmp_path, monkeypatch):
    import longtasks.analysis.report as report

    def broken(maximum):
        raise ValueError("boom")

    monkeypatch.setattr(report, "summarize_max_compression", broken)
    with pytest.raises(ValueError, match="boom"):
        analyze(frame(grid()), tmp_path / "new" / "a", FAST)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a staging folder, nor its parent
    earlier = tmp_path / "b"
    (earlier / "tables").mkdir(parents=True)
    (earlier / "tables" / "accuracy.csv").write_text("old")
    with pytest.raises(ValueError, match="boom"):
        analyze(frame(grid()), earlier, FAST)
    assert (earlier / "tables" / "accuracy.csv").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


# ---- 6. scaling-compression checked first; no report is a note -------------------------------------------


def test_a_bad_scaling_compression_is_refused_before_anything_is_written(tmp_path):
    frame(grid()).to_parquet(tmp_path / "r.parquet")
    out = tmp_path / "o"
    args = ["analyze", str(tmp_path / "r.parquet"), "--scaling-compression", "foo", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--scaling-compression" in result.output and "'foo'" in result.output
    assert not out.exists()


def test_achieved_compression_without_a_report_is_a_note_naming_the_flag(tmp_path):
    rows = frame(grid()).assign(
        achieved_compression=lambda f: f["achieved_compression"].where(f["method"] == "dense")
    )
    analyze(rows, tmp_path / "a", AnalysisOptions(n_boot=10, plots=False, scaling_compression="achieved"))
    assert any("qwen-7b quest 5x" in n and "--scaling-compression target" in n for n in notes(tmp_path / "a"))


# ---- 7. missing parameter counts ----------------------------------------------------------------------------


def test_a_missing_parameter_count_is_estimated_from_the_architecture(tmp_path):
    rows = frame(grid("qwen-7b") + grid("qwen-14b")).assign(n_params=math.nan)
    analyze(rows, tmp_path / "a", FAST)
    points = tables(tmp_path / "a")["isocost_points"]
    assert sorted(points.groupby("model")["n_params"].first().round(-8)) == [7.6e9, 14.8e9]
    assert sum("estimated from its architecture" in n for n in notes(tmp_path / "a")) == 2
    assert not tables(tmp_path / "a")["crossover"].empty

    from longtasks.analysis.prepare import estimate_params

    assert estimate_params(QWEN7) == pytest.approx(7.62e9, rel=0.01)  # Qwen2.5-7B: 7.6B
    assert estimate_params(QWEN14) == pytest.approx(14.7e9, rel=0.01)


def test_without_any_model_size_alpha_is_dropped_and_the_reasons_say_what_is_missing(tmp_path):
    from longtasks.analysis.scaling import ScalingLaw, fit_law

    cells = pd.DataFrame({"task": ["a", "a", "b", "b"] * 2, "n_params": math.nan, "length": [1024.0, 2048.0] * 4,
                          "compression": [1.0] * 4 + [4.0] * 4, "accuracy": [0.9, 0.7, 0.8, 0.6, 0.6, 0.5, 0.5, 0.3],
                          "n": 10})  # fmt: skip
    fitted = fit_law(cells, ScalingLaw())
    assert math.isnan(fitted.params["alpha"]) and not math.isnan(fitted.params["beta"])
    assert any("alpha not estimated: no cell has a n_params value" in n for n in fitted.notes)
    rows = frame(grid("qwen-7b") + grid("qwen-14b"))
    rows = rows.assign(n_params=math.nan, n_layers=rows["n_layers"].where(rows["model"] == "qwen-7b"))
    analyze(rows, tmp_path / "a", FAST)
    said = notes(tmp_path / "a")
    assert any("crossover length: needs two model sizes" in n and "qwen-7b" in n for n in said)
    assert not any("features without alpha" in n for n in said)


# ---- 8. one model per local path; sparse results without a dense run are noted ----------------------------


def test_a_trailing_slash_does_not_split_a_model(tmp_path):
    write_run(tmp_path / "dense", "smollm2-ref", "dense", 1.0, [1.0] * 6)
    write_run(tmp_path / "quest", "smollm2-ref/", "quest", 5.0, [0.0] * 6)
    table = build_table(find_runs([tmp_path]))
    assert set(table["model"]) == {"smollm2-ref"}
    assert compression_tests(table)["significant_drop"].tolist() == [True]
    # a table written before the fix (model "m/" beside "m") is read as one model too
    both = pd.concat([frame(grid(drop=0))[lambda f: f["method"] == "dense"],
                      frame(grid(drop=0))[lambda f: f["method"] != "dense"].assign(model="qwen-7b/")])  # fmt: skip
    analyze(both, tmp_path / "a", FAST)
    assert len(tables(tmp_path / "a")["max_compression"]) == 1


def test_sparse_results_without_their_dense_run_are_noted(tmp_path):
    rows = grid("qwen-7b") + [r for r in grid("qwen-14b") if r["method"] != "dense"]
    analyze(frame(rows), tmp_path / "a", FAST)
    assert any("no dense run of qwen-14b at length(s) [4096]" in n for n in notes(tmp_path / "a"))


# ---- 9. the crossover bootstrap is paired across models --------------------------------------------------


def test_models_run_on_the_same_inputs_share_their_bootstrap_draws():
    from longtasks.analysis.frontier.resample import task_replicates

    rng = np.random.default_rng(1)
    scores = rng.integers(0, 2, 40).astype(float)
    rows = [row(m, "dense", 1.0, i, scores[i]) for m in ("qwen-7b", "qwen-14b") for i in range(40)]
    replicates = task_replicates(frame(rows), n_boot=200, seed=0)
    small, large = replicates[("qwen-7b", 4096, "t")][1], replicates[("qwen-14b", 4096, "t")][1]
    assert np.std(large - small) == 0.0 and np.std(small) > 0.01  # same inputs, same scores: no gap spread
    other = [dict(r, doc_hash=f"x{r['sample_id']}") if r["model"] == "qwen-14b" else r for r in rows]
    replicates = task_replicates(frame(other), n_boot=200, seed=0)
    gap = replicates[("qwen-14b", 4096, "t")][1] - replicates[("qwen-7b", 4096, "t")][1]
    assert np.std(gap) > 0.01  # other inputs: independent draws
