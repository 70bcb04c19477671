"""The sweep runner's bookkeeping, with lm-eval replaced by a fake: resume, failures, spec changes, grouping."""

from __future__ import annotations

import json

import pytest

from longtasks.analysis.sweep import SweepSpec, run_sweep
from longtasks.analysis.sweep import runner as runner_module
from longtasks.analysis.sweep.grid import cells

SPEC = SweepSpec(models=("org/m",), methods=("quest",), compressions=(1.0, 2.0, 4.0), lengths=(1024, 2048),
                 tasks=("story_multihop",), num_samples=2)  # fmt: skip


class FakeLM:
    def __init__(self, longest: int) -> None:
        self.longest = longest


@pytest.fixture
def fake_lm_eval(monkeypatch):
    """Replace model building and evaluation; record what ran. `fail` holds cells that raise."""
    calls = {"built": [], "evaluated": [], "fail": set()}

    def build_lm(spec, cell, longest, tokenizers=None):
        calls["built"].append((cell.method, cell.compression, longest))
        return FakeLM(longest), runner_module.model_args_for(spec, cell)

    def evaluate_cell(lm, cell, spec, model_args):
        if cell in calls["fail"]:
            raise RuntimeError("out of memory")
        calls["evaluated"].append(cell)
        samples = [{"doc": {"id": f"s{i}", "task": "story_multihop", "length": cell.length}, "doc_hash": f"h{i}",
                    "score": float(i % 2), "parsed": 1.0} for i in range(spec.num_samples)]  # fmt: skip
        return {"results": {"story_multihop": {}}, "configs": {"story_multihop": {}},
                "n-samples": {"story_multihop": {"effective": spec.num_samples}},
                "config": {"model": spec.model_type, "model_args": model_args}, "date": 1.0,
                "samples": {"story_multihop": samples}}  # fmt: skip

    monkeypatch.setattr(runner_module, "build_lm", build_lm)
    monkeypatch.setattr(runner_module, "evaluate_cell", evaluate_cell)
    return calls


def test_grid_has_one_dense_baseline_per_length_and_no_sparse_cell_at_1x():
    grid = cells(SPEC)
    assert [(c.method, c.compression, c.length) for c in grid] == [
        ("dense", 1.0, 1024), ("dense", 1.0, 2048), ("quest", 2.0, 1024), ("quest", 2.0, 2048),
        ("quest", 4.0, 1024), ("quest", 4.0, 2048)]  # fmt: skip


def test_runs_each_cell_once_then_resumes_without_rerunning(fake_lm_eval, tmp_path):
    first = run_sweep(SPEC, tmp_path)
    assert len(first.done) == 6 and not first.skipped
    # one model object per (model, method, compression), sized for its longest length
    assert fake_lm_eval["built"] == [("dense", 1.0, 2048), ("quest", 2.0, 2048), ("quest", 4.0, 2048)]
    stale = tmp_path / "cells" / "org__m" / "quest-c4" / ".tmp-L4096"
    stale.mkdir()  # what a kill during a save leaves behind
    second = run_sweep(SPEC, tmp_path)
    assert not second.done and len(second.skipped) == 6 and len(fake_lm_eval["evaluated"]) == 6
    assert not stale.exists()
    import pandas as pd

    table = pd.read_parquet(second.table)
    assert len(table) == 12 and set(table["method"]) == {"dense", "quest"}


def test_a_failing_cell_is_recorded_with_keep_going_and_retried_next_time(fake_lm_eval, tmp_path):
    victim = cells(SPEC)[3]
    fake_lm_eval["fail"].add(victim)
    with pytest.raises(RuntimeError, match="out of memory"):
        run_sweep(SPEC, tmp_path)
    result = run_sweep(SPEC, tmp_path, keep_going=True)
    assert list(result.failed) == [victim.label()]
    assert json.loads((tmp_path / "failures.json").read_text()) == {
        victim.label(): "RuntimeError: out of memory"
    }
    fake_lm_eval["fail"].clear()
    again = run_sweep(SPEC, tmp_path)
    assert again.done == [victim]
    assert not (tmp_path / "failures.json").exists()  # it named a cell that has now finished


def test_a_token_in_model_args_is_used_but_never_written_and_may_change(fake_lm_eval, tmp_path):
    """A gated model's Hub token goes to the model only: not into sweep.json, the table or the results, and
    a new token does not block resuming."""
    secret, rotated = "hf_FAKEsecretToken0123456789", "hf_FAKErotatedToken0123456789"
    with_token = SweepSpec(**{**SPEC.to_dict(), "model_args": {"dtype": "float32", "token": secret}})
    run_sweep(with_token, tmp_path)
    assert (
        fake_lm_eval["evaluated"]
        and runner_module.model_args_for(with_token, cells(SPEC)[0])["token"] == secret
    )
    rotated_spec = SweepSpec(**{**SPEC.to_dict(), "model_args": {"dtype": "float32", "token": rotated}})
    assert run_sweep(rotated_spec, tmp_path).skipped  # resumed, not refused
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_a_sweep_json_written_with_a_token_still_resumes_without_printing_it(fake_lm_eval, tmp_path):
    """Folders written before credentials were left out hold the token in sweep.json's settings."""
    secret = "hf_FAKEsecretToken0123456789"
    with_token = SweepSpec(**{**SPEC.to_dict(), "model_args": {"dtype": "float32", "token": secret}})
    run_sweep(with_token, tmp_path)
    spec_file = tmp_path / "sweep.json"
    saved = json.loads(spec_file.read_text())
    saved["settings"]["model_args"]["token"] = secret  # as the older code wrote it
    spec_file.write_text(json.dumps(saved))
    assert len(run_sweep(with_token, tmp_path).skipped) == len(cells(SPEC))
    with pytest.raises(ValueError, match="num_samples") as refused:
        run_sweep(SweepSpec(**{**with_token.to_dict(), "num_samples": 3}), tmp_path)
    assert secret not in str(refused.value)


def test_resuming_with_other_result_settings_is_refused_but_the_grid_may_grow(fake_lm_eval, tmp_path):
    run_sweep(SPEC, tmp_path)
    with pytest.raises(ValueError, match="num_samples: 2 then, 3 now"):
        run_sweep(SweepSpec(**{**SPEC.to_dict(), "num_samples": 3}), tmp_path)
    grown = run_sweep(SweepSpec(**{**SPEC.to_dict(), "compressions": (2.0, 4.0, 8.0)}), tmp_path)
    assert [(c.compression, c.length) for c in grown.done] == [(8.0, 1024), (8.0, 2048)]


def test_a_method_unknown_to_the_analysis_needs_its_phase_before_anything_runs(
    fake_lm_eval, tmp_path, monkeypatch
):
    """A method of one's own, registered in sparse_eval: the analysis must be told its phase."""
    from sparse_eval import registry
    from sparse_eval.base import SparseMethod

    monkeypatch.setitem(registry._REGISTRY, "my_method", SparseMethod)
    spec = SweepSpec(models=("m",), methods=("my_method",), compressions=(2.0,), lengths=(1024,))
    with pytest.raises(ValueError, match="--phase"):
        run_sweep(spec, tmp_path)
    assert not fake_lm_eval["built"]
    result = run_sweep(spec, tmp_path, phases={"my_method": "prefill"})
    assert len(result.done) == 2


def test_a_misspelt_method_fails_before_anything_runs_and_leaves_no_folder(fake_lm_eval, tmp_path):
    spec = SweepSpec(models=("m",), methods=("vertical_slsh",), compressions=(2.0,), lengths=(1024,))
    with pytest.raises(ValueError, match=r"unknown sparse method\(s\) \['vertical_slsh'\]"):
        run_sweep(spec, tmp_path / "out", phases={"vertical_slsh": "prefill"})
    assert not fake_lm_eval["built"] and not (tmp_path / "out").exists()


def test_a_sweep_stopped_before_any_cell_leaves_nothing_that_refuses_new_settings(fake_lm_eval, tmp_path):
    """Settings that fail on the first cell (e.g. a generation budget too small for the answers) leave no
    sweep.json behind: the corrected command runs in the same --out."""
    fake_lm_eval["fail"].add(cells(SPEC)[0])
    with pytest.raises(RuntimeError, match="out of memory"):
        run_sweep(SPEC, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError):
        run_sweep(SPEC, tmp_path / "kept")
    assert list((tmp_path / "kept").iterdir()) == []
    fake_lm_eval["fail"].clear()
    assert len(run_sweep(SweepSpec(**{**SPEC.to_dict(), "num_samples": 3}), tmp_path / "kept").done) == 6


def test_spec_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="compressions must be >= 1"):
        SweepSpec(models=("m",), methods=("quest",), compressions=(0.5,), lengths=(1024,))
    with pytest.raises(ValueError, match=r"has no ratio > 1 for the sparse methods"):
        SweepSpec(models=("m",), methods=("quest",), compressions=(1.0,), lengths=(1024,))
    with pytest.raises(ValueError, match="not in --methods"):
        SweepSpec(
            models=("m",),
            methods=("quest",),
            compressions=(2.0,),
            lengths=(1024,),
            method_args={"snapkv": {}},
        )
    with pytest.raises(ValueError, match="sparse-hf"):
        SweepSpec(models=("m",), methods=("quest",), compressions=(2.0,), lengths=(1024,), model_type="hf")
    with pytest.raises(ValueError, match="whole number"):
        SweepSpec(
            models=("m",), methods=(), compressions=(), lengths=(1024,), gen_kwargs="max_gen_toks=a"
        ).max_gen_toks()
