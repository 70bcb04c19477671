"""The results store reads lm-eval output folders into the tidy per-sample table."""

from __future__ import annotations

import json
import math

import pytest
from lmeval_fakes import QWEN_TINY_CONFIG, write_run

from longtasks.analysis.store import COLUMNS, MissingSamplesError, load_table, read_results, save_table

REPORT = {"method": "snapkv", "target_compression": 4.0, "kv": {"achieved_compression": 3.6}}


@pytest.fixture
def model_dir(tmp_path):
    folder = tmp_path / "tiny-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(QWEN_TINY_CONFIG))
    return folder


def test_runs_become_one_row_per_sample(tmp_path, model_dir):
    out = tmp_path / "results"
    rows = [(1024, "t-1024-0", 1.0), (1024, "t-1024-1", 0.0), (2048, "t-2048-0", 0.5)]
    write_run(
        out / "dense", {"story_multihop": rows}, model_args={"pretrained": str(model_dir), "method": "dense"}
    )
    write_run(out / "snap", {"story_multihop": rows},
              model_args={"pretrained": str(model_dir), "method": "snapkv", "compression": 4, "window": 64},
              config={"sparse_compression": REPORT})  # fmt: skip
    frame = read_results([out])
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == 6
    snap = frame[frame["method"] == "snapkv"]
    assert set(snap["phase"]) == {"decode"} and set(snap["target_compression"]) == {4.0}
    assert set(snap["achieved_compression"]) == {3.6}
    assert set(snap["method_args"]) == {'{"window": 64}'}
    dense = frame[frame["method"] == "dense"]
    assert set(dense["phase"]) == {"dense"} and set(dense["achieved_compression"]) == {1.0}
    assert frame["score"].tolist() == [1.0, 0.0, 0.5] * 2
    assert (
        set(frame["n_layers"]) == {2} and set(frame["head_dim"]) == {8} and set(frame["n_params"]) == {12345}
    )
    assert set(frame["model_name"]) == {"tiny-model"}
    assert frame["doc_hash"].tolist()[:1] == ["hash-t-1024-0"]


def test_hf_runs_are_dense_and_a_missing_report_leaves_achieved_empty(tmp_path):
    write_run(
        tmp_path / "a",
        {"t": [(1024, "x", 1.0), (1024, "y", 1.0)]},
        model="hf",
        model_args={"pretrained": "org/none"},
    )
    write_run(tmp_path / "b", {"t": [(1024, "x", 0.0), (1024, "y", 1.0)]},
              model_args={"pretrained": "org/none", "method": "quest", "compression": "8"})  # fmt: skip
    frame = read_results([tmp_path])
    assert frame.groupby("method")["target_compression"].first().to_dict() == {"dense": 1.0, "quest": 8.0}
    assert math.isnan(frame[frame["method"] == "quest"]["achieved_compression"].iloc[0])
    assert frame["n_layers"].isna().all()  # no config.json anywhere offline: cost analyses will skip it


def test_results_without_per_sample_scores_are_refused(tmp_path):
    write_run(
        tmp_path, {"story_multihop": [(1024, "a", 1.0)]}, model_args={"pretrained": "m"}, log_samples=False
    )
    with pytest.raises(MissingSamplesError, match="--log_samples"):
        read_results([tmp_path])


def test_a_later_run_of_the_same_cell_replaces_the_earlier(tmp_path):
    args = {"pretrained": "m", "method": "quest", "compression": 2}
    write_run(tmp_path, {"t": [(1024, "a", 0.0)]}, model_args=args, stamp="old", date=1.0)
    write_run(tmp_path, {"t": [(1024, "a", 1.0)]}, model_args=args, stamp="new", date=2.0)
    frame = read_results([tmp_path])
    assert frame["score"].tolist() == [1.0]


def test_foreign_tasks_are_skipped_and_empty_folders_explained(tmp_path):
    path = write_run(tmp_path / "r", {"t": [(1024, "a", 1.0)]}, model_args={"pretrained": "m"})
    (path.parent / f"samples_mmlu_{path.stem[len('results_') :]}.jsonl").write_text('{"doc": {}, "acc": 1}\n')
    data = json.loads(path.read_text())
    data["n-samples"]["mmlu"] = {"original": 1, "effective": 1}
    path.write_text(json.dumps(data))
    assert read_results([tmp_path])["task"].tolist() == ["t"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="results_"):
        read_results([tmp_path / "empty"])


def test_table_round_trips_through_parquet_and_bad_tables_are_named(tmp_path):
    write_run(tmp_path / "r", {"t": [(1024, "a", 1.0)]}, model_args={"pretrained": "m"})
    frame = read_results([tmp_path / "r"])
    path = save_table(frame, tmp_path / "results.parquet")
    assert load_table(path).equals(frame)
    save_table(frame.drop(columns=["score"]), tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="score"):
        load_table(tmp_path / "bad.csv")
    save_table(frame.iloc[:0], tmp_path / "no_rows.parquet")
    with pytest.raises(ValueError, match=r"no_rows\.parquet has the results columns but no rows"):
        load_table(tmp_path / "no_rows.parquet")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv could not be read"):
        load_table(tmp_path / "empty.csv")


def test_achieved_compression_reads_sparse_hfs_summary_per_length():
    from longtasks.analysis.store.table import COMPRESSION_REPORT_KEY, achieved_compression

    summary = {"method": "quest", "phase": "decode", "requested": 10, "achieved": 9.0,
               "achieved_by_length": {"2048": 8.5, "4096": 9.5}}  # fmt: skip
    config = {COMPRESSION_REPORT_KEY: summary}
    assert achieved_compression(config, "quest", 4096) == 9.5
    assert achieved_compression(config, "quest", 1024) == 9.0  # not recorded at that length: the run's value
    assert achieved_compression(config, "dense", 4096) == 1.0


def test_an_adaptive_run_at_compression_1_keeps_its_method_and_what_it_achieved():
    """FlexPrefill with an explicit gamma runs at compression 1 and picks its own budget: it is not a dense
    baseline (it was labelled dense, target 1). A sparse method that compressed nothing at 1 is dense."""
    from longtasks.analysis.store.table import COMPRESSION_REPORT_KEY, method_of

    args = {"method": "flexprefill", "compression": 1.0, "gamma": 0.9}
    summary = {"method": "flexprefill", "phase": "prefill", "requested": 1.0, "achieved": 1.2049}
    assert method_of({"model": "sparse-hf", COMPRESSION_REPORT_KEY: summary}, args) == ("flexprefill", 1.2)
    same = {**summary, "achieved": 1.0}
    assert method_of({"model": "sparse-hf", COMPRESSION_REPORT_KEY: same}, args) == ("dense", 1.0)
    assert method_of({"model": "sparse-hf"}, {"method": "snapkv", "compression": 1}) == ("dense", 1.0)
    assert method_of({"model": "sparse-hf"}, {"method": "snapkv", "compression": 4}) == ("snapkv", 4.0)
