"""The scoring API: loading predictions and generated datasets, joining by id, missing rows, reports."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console
from rich.table import Table

from longtasks.sample import Sample
from longtasks.scoring import ScoreReport, format_answer, score


def _sample(task: str, length: int, index: int, kind: str, answer, depths: list[float]) -> Sample:
    return Sample(
        id=f"{task}-{length}-s0-{index}",
        task=task,
        family="story",
        length=length,
        input_tokens=length,
        prompt="a very long prompt " * 3,
        question="q?",
        answer=answer,
        answer_kind=kind,
        tokenizer="qwen2.5",
        tokenizer_revision="test",
        chat=True,
        seed=0,
        index=index,
        knobs={"k": 1},
        evidence_depths=depths,
        generator_version="test",
    )


SAMPLES = [
    _sample("retrieval", 4096, 0, "list", ["Red Lamp", "Blue Cup"], [0.1]),
    _sample("retrieval", 4096, 1, "list", ["Old Map", "Green Hat"], [0.5]),
    _sample("retrieval", 8192, 0, "list", ["Red Lamp", "Old Map"], [0.95]),
    _sample("inventory", 4096, 0, "set", ["Red Lamp", "Blue Cup"], [0.3, 0.5]),
    _sample("chapters", 4096, 0, "int_set", [3, 17], [0.7, 0.9]),
    _sample("owner", 4096, 0, "text", "Alice Brown", []),
]


def _write_folder(root: Path, samples: list[Sample]) -> Path:
    for task in sorted({s.task for s in samples}):
        rows = [s.to_row() for s in samples if s.task == task]
        folder = root / f"{task}_4k"
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), folder / "test-00000-of-00001.parquet")
    return root


def _perfect(samples: list[Sample]) -> list[dict[str, str]]:
    return [{"id": s.id, "prediction": "Sure. " + format_answer(s.answer_kind, s.answer)} for s in samples]


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_file_round_trip(tmp_path):
    data = _write_folder(tmp_path / "data", SAMPLES)
    records = _perfect(SAMPLES)
    records[1]["prediction"] = "<answer>Old Map, Red Lamp</answer>"  # second position wrong
    records[4]["prediction"] = "Chapter 3 and 17"  # no answer block: unparseable
    preds = _write_jsonl(tmp_path / "pred.jsonl", records)

    report = score(preds, data)
    assert isinstance(report, ScoreReport)
    by_id = {row["id"]: row for row in report.per_sample}
    assert len(by_id) == len(SAMPLES) and report.missing == 0
    assert by_id["retrieval-4096-s0-1"]["score"] == 0.5
    assert by_id["chapters-4096-s0-0"]["score"] == 0.0 and by_id["chapters-4096-s0-0"]["parsed"] == 0.0
    assert by_id["inventory-4096-s0-0"]["exact_set"] == 1.0
    summary = report.summary
    assert summary.overall.n == 6 and summary.overall.score.mean == pytest.approx(4.5 / 6)
    assert summary.overall.unparsed == 1
    retrieval = {(g.task, g.length): g for g in summary.by_task_length}
    assert retrieval["retrieval", 4096].score.mean == pytest.approx(0.75)
    assert retrieval["retrieval", 8192].n == 1
    assert [g.task for g in summary.by_task] == ["chapters", "inventory", "owner", "retrieval"]

    out = tmp_path / "report.json"
    text = report.to_json(out)
    assert json.loads(out.read_text()) == json.loads(text) == json.loads(json.dumps(report.to_dict()))
    assert json.loads(text)["summary"]["overall"]["n"] == 6


def test_depth_bins_count_every_row(tmp_path):
    report = score(_perfect(SAMPLES), SAMPLES)
    bins = {g.depth_bin: g.n for g in report.summary.by_depth}
    # Mean depths: 0.1, 0.5, 0.95, 0.4, 0.8 and one row without evidence depths.
    assert bins == {"[0.0,0.2)": 1, "[0.4,0.6)": 2, "[0.8,1.0]": 2, "none": 1}
    assert sum(g.n for g in report.summary.by_task_depth) == len(SAMPLES)
    flat = score(_perfect(SAMPLES), SAMPLES, group_by_depth=False)
    assert flat.summary.by_depth == [] and "depth_bin" not in flat.per_sample[0]


def test_single_parquet_file_and_dicts_and_datasets(tmp_path):
    data = _write_folder(tmp_path / "data", SAMPLES)
    file = next(data.glob("retrieval_4k/*.parquet"))
    retrieval = [s for s in SAMPLES if s.task == "retrieval"]
    assert score(_perfect(retrieval), file).summary.overall.score.mean == 1.0
    assert score(_perfect(SAMPLES), [s.to_row() for s in SAMPLES]).summary.overall.score.mean == 1.0
    datasets = pytest.importorskip("datasets")
    dataset_dict = datasets.DatasetDict({"test": datasets.Dataset.from_list([s.to_row() for s in SAMPLES])})
    assert score(_perfect(SAMPLES), dataset_dict).summary.overall.n == len(SAMPLES)


def test_missing_prediction_scores_zero_and_is_counted():
    records = _perfect(SAMPLES)[1:]
    report = score(records, SAMPLES)
    assert report.missing == 1 and report.missing_ids == [SAMPLES[0].id]
    row = report.per_sample[0]
    assert row["missing"] is True and row["score"] == 0.0 and row["extracted"] is None
    assert report.summary.overall.n == len(SAMPLES)
    assert report.summary.overall.score.mean == pytest.approx(5 / 6)
    assert report.summary.overall.missing == 1 and report.summary.overall.unparsed == 0
    with pytest.raises(ValueError, match=r"1 dataset row\(s\) have no prediction: 'retrieval-4096-s0-0'"):
        score(records, SAMPLES, require_all=True)


def test_unknown_prediction_id_is_an_error():
    records = [*_perfect(SAMPLES), {"id": "ghost-1", "prediction": "<answer>x</answer>"}]
    with pytest.raises(ValueError, match="'ghost-1'"):
        score(records, SAMPLES)


def test_duplicate_ids_are_errors():
    records = _perfect(SAMPLES)
    with pytest.raises(ValueError, match="duplicate prediction ids: 'retrieval-4096-s0-0'"):
        score([*records, records[0]], SAMPLES)
    with pytest.raises(ValueError, match="duplicate ids"):
        score(records, [*SAMPLES, SAMPLES[0]])


def test_bad_inputs_name_the_problem(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "prediction": "x"}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        score(bad, SAMPLES)
    with pytest.raises(ValueError, match="'id' and 'prediction'"):
        score([{"id": SAMPLES[0].id}], SAMPLES)
    with pytest.raises(ValueError, match="not a string"):
        score([{"id": SAMPLES[0].id, "prediction": None}], SAMPLES)
    with pytest.raises(ValueError, match="does not exist"):
        score([], tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"no \.parquet files"):
        score([], tmp_path)
    lacking = tmp_path / "lacking.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": "x", "task": "t"}]), lacking)
    with pytest.raises(ValueError, match="length, answer, answer_kind"):
        score([], lacking)
    with pytest.raises(ValueError, match="unknown answer_kind 'bag'"):
        score([], [{**SAMPLES[0].to_row(), "answer_kind": "bag"}])


def test_table_renders_every_group():
    report = score(_perfect(SAMPLES), SAMPLES)
    table = report.to_table()
    assert isinstance(table, Table) and table.row_count == len(report.summary.by_task_length) + 1
    console = Console(record=True, width=120)
    console.print(table)
    text = console.export_text()
    assert "overall" in text and "retrieval" in text and "8k" in text
    assert report.to_table("depth").row_count == len(report.summary.by_depth) + 1
    with pytest.raises(ValueError, match="task_length"):
        report.to_table("model")


def test_unfinished_folder_is_reported_and_refused_under_require_all(tmp_path):
    from tests._hub_folder import make_folder

    make_folder(
        tmp_path, tasks=("story_retrieval",), lengths=(1024, 2048), incomplete=("story_retrieval-2k",)
    )
    predictions = [{"id": "story_retrieval-1024-s0-0", "prediction": "<answer>x</answer>"}]
    report = score(predictions, tmp_path)
    assert report.unfinished == {"story_retrieval-2k": (5, 5)}
    assert report.to_dict()["unfinished"]["story_retrieval-2k"] == {"rows": 5, "promised": 5}
    with pytest.raises(ValueError, match="unfinished: story_retrieval-2k has 5 of 5 rows"):
        score(predictions, tmp_path, require_all=True)


def test_prediction_files_with_a_bom_load_and_bad_bytes_name_the_line(tmp_path):
    sample = SAMPLES[0]
    good = tmp_path / "bom.jsonl"
    good.write_bytes(
        b"\xef\xbb\xbf" + json.dumps({"id": sample.id, "prediction": "<answer>a</answer>"}).encode()
    )
    assert score(good, [sample]).missing == 0
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"id": "a", "prediction": ""}\n{"id": "caf\xe9", "prediction": ""}\n')
    with pytest.raises(ValueError, match=r"latin1.jsonl:2 is not UTF-8 text"):
        score(bad, [sample])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ci_level": 1.5}, "ci_level=1.5 must be a number strictly between 0 and 1"),
        ({"ci_level": 0.0}, "ci_level=0.0 must be"),
        ({"ci_level": float("nan")}, "ci_level=nan must be"),
        ({"ci_level": "0.9"}, "ci_level='0.9' must be"),
        ({"ci_resamples": 0}, "ci_resamples=0 must be a positive whole number"),
        ({"ci_resamples": -5}, "ci_resamples=-5 must be"),
        ({"ci_resamples": 10.5}, "ci_resamples=10.5 must be"),
        ({"ci_resamples": True}, "ci_resamples=True must be"),
    ],
)
def test_bad_interval_settings_name_the_value(options, message):
    """Checked at the entry, before any data is read: deep in the bootstrap numpy's error names neither."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        score(_perfect(SAMPLES), [s.to_row() for s in SAMPLES], **options)


def test_good_interval_settings_still_score():
    import numpy as np

    report = score(
        _perfect(SAMPLES), [s.to_row() for s in SAMPLES], ci_level=np.float64(0.9), ci_resamples=np.int64(50)
    )
    assert report.summary.ci["level"] == 0.9 and report.summary.overall.score.mean == 1.0


def test_empty_paths_and_a_folder_of_predictions_are_named(tmp_path):
    data = _write_folder(tmp_path / "data", SAMPLES)
    predictions = _write_jsonl(tmp_path / "p.jsonl", _perfect(SAMPLES))
    with pytest.raises(ValueError, match="the predictions path is empty"):
        score("", data)
    with pytest.raises(ValueError, match=r"predictions file '.*data' is a folder; give the JSONL file"):
        score(data, data)
    with pytest.raises(ValueError, match="the dataset path is empty"):
        score(predictions, "")
