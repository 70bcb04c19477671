"""Score a file (or iterable) of predictions against a generated dataset.

`score(predictions, dataset)` is the one entry point: it joins predictions to dataset rows by id,
scores every row (a row without a prediction scores 0 and is counted as missing, so a partial run can
never look better than it is), and aggregates with confidence intervals.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from longtasks.lengths import format_length
from longtasks.sample import Sample
from longtasks.scoring.aggregate import (
    CI_LEVEL,
    CI_RESAMPLES,
    CI_SEED,
    GroupSummary,
    Summary,
    depth_bin,
    summarize,
)
from longtasks.scoring.metrics import (
    METRIC_KEYS,
    decode_gold,
    list_position_scores,
    score_extracted,
    zero_metrics,
)
from longtasks.scoring.parse import check_kind, extract_answer

if TYPE_CHECKING:
    from rich.table import Table

REQUIRED_COLUMNS = ("id", "task", "length", "answer", "answer_kind")
OPTIONAL_COLUMNS = ("evidence_depths",)
ALL_METRIC_KEYS = tuple(dict.fromkeys(key for keys in METRIC_KEYS.values() for key in keys))
_SHOWN_IDS = 5


@dataclass(frozen=True)
class GoldRow:
    """What scoring needs from a dataset row (the prompt is never loaded)."""

    id: str
    task: str
    length: int
    answer_kind: str
    answer: Any
    evidence_depths: tuple[float, ...]


@dataclass
class ScoreReport:
    """Per-sample metrics plus aggregates. `missing` counts dataset rows that had no prediction."""

    per_sample: list[dict[str, Any]]
    summary: Summary
    missing: int
    missing_ids: list[str] = field(default_factory=list)
    unfinished: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Configs of the dataset folder that did not finish generating: name -> (rows present, rows promised)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": len(self.per_sample),
            "missing": self.missing,
            "missing_ids": self.missing_ids,
            "unfinished": {
                name: {"rows": have, "promised": want} for name, (have, want) in self.unfinished.items()
            },
            "summary": self.summary.to_dict(),
            "per_sample": self.per_sample,
        }

    def to_json(self, path: str | Path | None = None, *, indent: int | None = 2) -> str:
        """The report as JSON text; also written to `path` when given."""
        text = json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def to_table(self, by: str = "task_length") -> Table:
        """A rich table of mean score with its 95 % CI; `by` is "task_length", "task" or "depth"."""
        return _render_table(self, by)


def _shown(ids: Iterable[str]) -> str:
    ids = list(ids)
    more = f" (and {len(ids) - _SHOWN_IDS} more)" if len(ids) > _SHOWN_IDS else ""
    return ", ".join(repr(i) for i in ids[:_SHOWN_IDS]) + more


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # a leading BOM is fine
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"{path}:{number} is not UTF-8 text (byte {error.start + 1}: {raw[error.start : error.start + 1]!r}); "
                    "save the predictions file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number} is not valid JSON ({error.msg})") from error
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number} is not a JSON object with 'id' and 'prediction'")
            yield record


def load_predictions(
    predictions: str | Path | Iterable[Mapping[str, Any]] | Mapping[str, str],
) -> dict[str, str]:
    """Predictions as {id: text}, from a JSONL path, an iterable of {"id", "prediction"} dicts, or a
    mapping id -> text. Duplicate ids and non-string predictions are errors."""
    if isinstance(predictions, (str, Path)):
        if isinstance(predictions, str) and not predictions.strip():  # Path("") would be the current folder
            raise ValueError(
                'the predictions path is empty; give a JSONL file of {"id": ..., "prediction": ...} lines'
            )
        path = Path(predictions)
        if path.is_dir():
            raise ValueError(
                f"predictions file {str(path)!r} is a folder; give the JSONL file of "
                '{"id": ..., "prediction": ...} lines, one per dataset row'
            )
        if not path.is_file():
            raise ValueError(
                f"predictions file {str(path)!r} does not exist (expected JSONL of {{id, prediction}})"
            )
        records: Iterable[Mapping[str, Any]] = _read_jsonl(path)
    elif isinstance(predictions, Mapping):
        records = ({"id": key, "prediction": value} for key, value in predictions.items())
    else:
        records = predictions
    result: dict[str, str] = {}
    duplicates: list[str] = []
    for record in records:
        if not isinstance(record, Mapping) or "id" not in record or "prediction" not in record:
            raise ValueError(f"prediction record {record!r} needs the keys 'id' and 'prediction'")
        sample_id, text = str(record["id"]), record["prediction"]
        if not isinstance(text, str):
            raise ValueError(
                f"prediction for id {sample_id!r} is {type(text).__name__}, not a string "
                "(use '' for no output)"
            )
        if sample_id in result:
            duplicates.append(sample_id)
        result[sample_id] = text
    if duplicates:
        raise ValueError(f"duplicate prediction ids: {_shown(dict.fromkeys(duplicates))}; keep one per id")
    return result


def _parquet_files(path: Path) -> list[Path]:
    if path.is_file():
        if path.suffix != ".parquet":
            raise ValueError(f"dataset file {str(path)!r} is not a .parquet file")
        return [path]
    if path.is_dir():
        files = sorted(path.rglob("*.parquet"))
        if not files:
            raise ValueError(
                f"no .parquet files under {str(path)!r} "
                "(expected <config>/*.parquet from `longtasks generate`)"
            )
        return files
    raise ValueError(
        f"dataset path {str(path)!r} does not exist "
        "(give a folder from `longtasks generate` or a .parquet file)"
    )


def _read_parquet(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    names = set(pq.read_schema(path).names)
    absent = [name for name in REQUIRED_COLUMNS if name not in names]
    if absent:
        raise ValueError(f"{path} lacks the column(s) {', '.join(absent)} needed for scoring")
    columns = [*REQUIRED_COLUMNS, *(name for name in OPTIONAL_COLUMNS if name in names)]
    yield from pq.read_table(path, columns=columns).to_pylist()


def _row_dicts(dataset: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(dataset, (str, Path)):
        _check_dataset_path(dataset)
        for file in _parquet_files(Path(dataset)):
            yield from _read_parquet(file)
        return
    if isinstance(dataset, Mapping):  # e.g. a datasets.DatasetDict: score every split
        for split in dataset.values():
            yield from _row_dicts(split)
        return
    for row in dataset:
        yield row.to_row() if isinstance(row, Sample) else row


def _check_dataset_path(dataset: str | Path) -> None:
    """An empty string would become Path(".") and score every parquet file under the current folder."""
    if isinstance(dataset, str) and not dataset.strip():
        raise ValueError(
            "the dataset path is empty; give the output folder of `longtasks generate` or one of its .parquet files"
        )


def _check_ci(level: Any, resamples: Any) -> None:
    """Checked once at the entry: deep in the bootstrap a bad value is a numpy error that names neither."""
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0.0 < level < 1.0:
        raise ValueError(f"ci_level={level!r} must be a number strictly between 0 and 1, e.g. 0.95")
    if isinstance(resamples, bool) or not isinstance(resamples, numbers.Integral) or resamples < 1:
        raise ValueError(f"ci_resamples={resamples!r} must be a positive whole number, e.g. 1000")


def _gold_row(row: Mapping[str, Any]) -> GoldRow:
    if not isinstance(row, Mapping):
        raise ValueError(f"dataset row {row!r} is neither a dict nor a Sample")
    absent = [name for name in REQUIRED_COLUMNS if name not in row]
    if absent:
        raise ValueError(f"dataset row {row.get('id', '?')!r} lacks {', '.join(absent)}")
    try:
        kind = check_kind(row["answer_kind"])
        answer = decode_gold(kind, row["answer"])
    except ValueError as error:
        raise ValueError(f"dataset row {row['id']!r}: {error}") from error
    depths = row.get("evidence_depths")
    depths = () if depths is None else tuple(float(depth) for depth in depths)
    return GoldRow(str(row["id"]), str(row["task"]), int(row["length"]), kind, answer, depths)


def load_gold(dataset: Any) -> list[GoldRow]:
    """Gold rows from a generated folder, a .parquet file, a datasets object, or dicts / Samples."""
    rows = [_gold_row(row) for row in _row_dicts(dataset)]
    if not rows:
        raise ValueError("the dataset has no rows to score")
    seen: set[str] = set()
    duplicates = [row.id for row in rows if row.id in seen or seen.add(row.id)]
    if duplicates:
        raise ValueError(f"the dataset holds duplicate ids: {_shown(dict.fromkeys(duplicates))}")
    return rows


def score(
    predictions: str | Path | Iterable[Mapping[str, Any]] | Mapping[str, str],
    dataset: Any,
    *,
    group_by_depth: bool = True,
    require_all: bool = False,
    ci_level: float = CI_LEVEL,
    ci_resamples: int = CI_RESAMPLES,
    ci_seed: int = CI_SEED,
) -> ScoreReport:
    """Score predictions against a dataset; see the module docstring for the rules.

    Raises ValueError for a prediction id absent from the dataset, duplicate ids, and (with
    `require_all`) for dataset rows without a prediction.
    """
    _check_ci(ci_level, ci_resamples)
    predicted = load_predictions(predictions)
    unfinished = unfinished_configs(dataset)
    if unfinished and require_all:
        raise ValueError(f"the dataset folder is unfinished: {_unfinished_text(unfinished)}")
    gold = load_gold(dataset)
    known = {row.id for row in gold}
    unknown = [sample_id for sample_id in predicted if sample_id not in known]
    if unknown:
        raise ValueError(
            f"{len(unknown)} prediction id(s) are not in the dataset: {_shown(unknown)}; "
            "check that predictions and data come from the same generation run"
        )
    missing_ids = [row.id for row in gold if row.id not in predicted]
    if missing_ids and require_all:
        raise ValueError(f"{len(missing_ids)} dataset row(s) have no prediction: {_shown(missing_ids)}")
    per_sample = [_score_row(row, predicted.get(row.id), group_by_depth) for row in gold]
    summary = summarize(
        per_sample,
        metric_keys=ALL_METRIC_KEYS,
        group_by_depth=group_by_depth,
        level=ci_level,
        resamples=ci_resamples,
        seed=ci_seed,
    )
    return ScoreReport(
        per_sample=per_sample,
        summary=summary,
        missing=len(missing_ids),
        missing_ids=missing_ids,
        unfinished=unfinished,
    )


def unfinished_configs(dataset: Any) -> dict[str, tuple[int, int]]:
    """For a `longtasks generate` folder: configs not finished, with (rows present, rows promised)."""
    if not isinstance(dataset, (str, Path)):
        return {}
    _check_dataset_path(dataset)
    import pyarrow.parquet as pq

    from longtasks.dataset_dir import read_manifest

    folder = Path(dataset)
    if not folder.is_dir():
        return {}
    # {} without longtasks.json; a ValueError naming the file when it is damaged
    manifest = read_manifest(folder)
    result = {}
    for name, entry in manifest.get("configs", {}).items():
        if entry.get("complete"):
            continue
        have = sum(pq.ParquetFile(f).metadata.num_rows for f in (folder / "data" / name).glob("*.parquet"))
        result[name] = (have, int(entry.get("num_samples", 0)))
    return result


def _unfinished_text(unfinished: dict[str, tuple[int, int]]) -> str:
    parts = [f"{name} has {have} of {want} rows" for name, (have, want) in unfinished.items()]
    return "; ".join(parts) + " (re-run the generate command recorded in longtasks.json to finish it)"


def _score_row(row: GoldRow, prediction: str | None, with_depth: bool) -> dict[str, Any]:
    extracted = None if prediction is None else extract_answer(prediction)
    metrics = (
        zero_metrics(row.answer_kind)
        if prediction is None
        else score_extracted(row.answer_kind, extracted, row.answer)
    )
    record: dict[str, Any] = {
        "id": row.id,
        "task": row.task,
        "length": row.length,
        "answer_kind": row.answer_kind,
        "missing": prediction is None,
        "extracted": extracted,
    }
    if with_depth:
        depths = row.evidence_depths
        record["mean_depth"] = sum(depths) / len(depths) if depths else None
        try:
            record["depth_bin"] = depth_bin(depths)
        except ValueError as error:
            raise ValueError(f"dataset row {row.id!r}: {error}") from error
        if row.answer_kind == "list":
            record["question_scores"] = list_position_scores(extracted, row.answer)
            record["question_depths"] = list(depths)
    record.update(metrics)
    return record


def _render_table(report: ScoreReport, by: str) -> Table:
    from rich.markup import escape
    from rich.table import Table

    views = {
        "task_length": report.summary.by_task_length,
        "task": report.summary.by_task,
        "depth": report.summary.by_depth,
        "question_depth": report.summary.by_question_depth,
    }
    if by not in views:
        raise ValueError(f"unknown table view {by!r}: use one of {', '.join(views)}")
    level = round(report.summary.ci["level"] * 100)
    table = Table(title=f"longtasks scores (n={len(report.per_sample)}, missing={report.missing})")
    first = {"depth": "Evidence depth", "question_depth": "Task, question's evidence depth"}.get(by, "Task")
    table.add_column(first)
    if by == "task_length":
        table.add_column("Length", justify="right")
    for name in ("n", "Score", f"{level}% CI", "Parsed", "Missing"):
        table.add_column(name, justify="right")
    for group in views[by]:
        label = {"depth": group.depth_bin, "question_depth": f"{group.task} {group.depth_bin}"}.get(
            by, group.task
        )
        # task names come from the data: escaped, so "[red]x" is printed as written, not as markup
        table.add_row(*_table_cells(group, escape(str(label)), by == "task_length"))
    if by != "question_depth":  # the overall row counts samples, not questions
        table.add_section()
        table.add_row(*_table_cells(report.summary.overall, "overall", by == "task_length"), style="bold")
    return table


def _table_cells(group: GroupSummary, label: str, with_length: bool) -> list[str]:
    cells = [label]
    if with_length:
        cells.append(format_length(group.length) if group.length is not None else "all")
    parsed = group.metrics.get("parsed", 0.0)
    cells += [
        str(group.n),
        f"{group.score.mean:.3f}",
        f"[{group.score.low:.3f}, {group.score.high:.3f}]",
        f"{parsed:.0%}",
        str(group.missing),
    ]
    return cells
