"""Build, save and load the tidy per-sample results table.

One row per (run, task, sample). Columns (`COLUMNS`): the model (name, short name, parameter count and the
architecture numbers from its config.json), the task, the prompt length, the sample's id and lm-eval's hash of
the document (equal hashes = the same input, which pairs samples across methods), the method, its paper phase,
target and achieved compression (achieved from sparse-hf's compression report when the run carries one, else
empty), the other method arguments, chat mode, and the sample's `score` and `parsed`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from longtasks.analysis import _deps
from longtasks.analysis.arch import ARCH_COLUMNS, WINDOW_COLUMNS
from longtasks.analysis.io import write_table
from longtasks.analysis.methods import DENSE, REPORT_PHASES, method_phase
from longtasks.analysis.store.model_info import model_info
from longtasks.analysis.store.runs import Run, find_runs

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

COLUMNS = (
    "run", "model", "model_name", "n_params", *ARCH_COLUMNS, "task", "length", "sample_id", "doc_hash",
    "method", "phase", "target_compression", "achieved_compression", "method_args", "chat", "score", "parsed",
)  # fmt: skip
KEY = ("model", "method", "target_compression", "method_args", "chat", "task", "length", "sample_id")
"""What identifies one measurement; a later run of the same key replaces an earlier one."""
NOT_METHOD_ARGS = frozenset({
    "pretrained", "tokenizer", "dtype", "device", "device_map", "max_length", "max_model_len", "batch_size",
    "max_batch_size", "trust_remote_code", "revision", "parallelize", "backend", "sparse_backend", "method",
    "compression", "gguf_file", "peft", "delta", "add_bos_token", "attn_implementation", "use_fast_tokenizer",
    "subfolder", "logits_cache", "softmax_dtype", "mixed_precision_dtype", "think_end_token", "enable_thinking",
    "token", "use_auth_token", "hf_token",
})  # fmt: skip
OPTIONAL_COLUMNS = dict.fromkeys(WINDOW_COLUMNS, 0)
"""Columns a table written by an earlier version lacks, and the value that reads it as it was meant (no sliding
window); only those of them that COLUMNS holds are filled in."""
MISSING_TEXT = ("", "nan", "None")
"""How a missing doc hash reads after a CSV round trip or `str(None)`."""
COMPRESSION_REPORT_KEY = "sparse_compression"
"""Where a run's `config` carries what sparse-hf achieved: its summary (`requested`, `achieved`,
`achieved_by_length`, written by sparse-hf's `get_model_info` into every lm-eval results file) or, in
older sweep folders, a `CompressionReport.to_dict()` (per phase)."""


def method_of(config: Mapping[str, Any], model_args: Mapping[str, Any]) -> tuple[str, float]:
    """(method, target compression): sparse-hf's model args, or dense for any other model type. A sparse
    method at compression 1 is dense, unless it compressed on its own (FlexPrefill with an explicit `gamma`
    runs at compression 1 and picks its own budget): then it keeps its name, and what it achieved over the
    run, to 2 decimals, stands for its target."""
    if config.get("model") == "sparse-hf" or "method" in model_args:
        method = str(model_args.get("method", DENSE))
        target = float(model_args.get("compression", 1.0))
        if method == DENSE:
            return DENSE, 1.0
        if target == 1.0:
            achieved = achieved_compression(config, method)
            return (method, round(achieved, 2)) if achieved > 1.0 else (DENSE, 1.0)
        return method, target
    return DENSE, 1.0


def achieved_compression(config: Mapping[str, Any], method: str, length: int | None = None) -> float:
    """The compression the method really achieved, at `length` when the run recorded it per length, else over
    the whole run (NaN if the run recorded nothing)."""
    report = config.get(COMPRESSION_REPORT_KEY)
    if method == DENSE:
        return 1.0
    if not isinstance(report, Mapping):
        return math.nan
    if "achieved" in report:  # sparse-hf's summary
        by_length = report.get("achieved_by_length") or {}
        value = by_length.get(str(length)) if length is not None else None
        value = report.get("achieved") if value is None else value
        return float(value) if isinstance(value, int | float) else math.nan
    phases = [key for key in ("prefill", "decode", "kv") if isinstance(report.get(key), Mapping)]
    wanted = REPORT_PHASES.get(method)
    phase = wanted if wanted in phases else (phases[0] if len(phases) == 1 else None)
    if phase is None:
        return math.nan
    value = report[phase].get("achieved_compression")
    return float(value) if isinstance(value, int | float) else math.nan


def _method_args(model_args: Mapping[str, Any]) -> str:
    extra = {key: model_args[key] for key in sorted(model_args) if key not in NOT_METHOD_ARGS}
    return json.dumps(extra, sort_keys=True, default=str) if extra else ""


def input_key(frame: pd.DataFrame) -> pd.Series:
    """What identifies a sample's input across runs: lm-eval's doc hash, or the sample id where the hash is
    missing (never the text "nan", which every hash-less sample would share)."""
    hashes = frame["doc_hash"].fillna("").astype(str) if "doc_hash" in frame else None
    ids = frame["sample_id"].fillna("").astype(str)
    return ids if hashes is None else hashes.where(~hashes.isin(MISSING_TEXT), ids)


def _score(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def run_rows(run: Run, phases: Mapping[str, str] | None = None) -> Iterable[dict[str, Any]]:
    """The per-sample rows of one run (tasks whose samples carry no `length`/`score` are not ours: skipped)."""
    config, model_args = run.config, run.model_args
    info = model_info(run.results_path.parent, config, model_args)
    method, target = method_of(config, model_args)
    base = {
        "run": str(run.results_path),
        "model": info.name,
        "model_name": Path(info.name).name or info.name,
        "n_params": info.n_params,
        **{name: (getattr(info.arch, name) if info.arch else math.nan) for name in ARCH_COLUMNS},
        "method": method,
        "phase": method_phase(method, phases),
        "target_compression": target,
        "method_args": _method_args(model_args),
    }
    for task_name, path in run.samples.items():
        skipped = 0
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                sample = json.loads(line)
                doc = sample.get("doc") or {}
                if "length" not in doc or "score" not in sample:
                    skipped += 1
                    continue
                yield {
                    **base,
                    "task": str(doc.get("task") or task_name),
                    "length": int(doc["length"]),
                    "achieved_compression": achieved_compression(config, method, int(doc["length"])),
                    "sample_id": str(doc.get("id", sample.get("doc_id"))),
                    "doc_hash": str(sample.get("doc_hash") or ""),
                    "chat": bool(doc.get("chat", False)),
                    "score": _score(sample["score"]),
                    "parsed": _score(sample.get("parsed")),
                }
        if skipped:
            log.warning(
                "%s: %d sample(s) without length/score skipped (not a longtasks task)", path.name, skipped
            )


def build_table(runs: Iterable[Run], phases: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The tidy table of many runs; when two runs measured the same key, the later (by date) wins."""
    pd = _deps.pandas()
    ordered = sorted(runs, key=lambda run: run.date)
    frame = pd.DataFrame([row for run in ordered for row in run_rows(run, phases)], columns=list(COLUMNS))
    if frame.empty:
        raise ValueError("the results hold no longtasks samples (rows with a length and a score)")
    before = len(frame)
    frame = frame.drop_duplicates(subset=list(KEY), keep="last").reset_index(drop=True)
    if len(frame) < before:
        log.warning("%d sample row(s) measured again by a later run were replaced by it", before - len(frame))
    return frame.astype({"length": "int64", "chat": "bool"})


def read_results(folders: Iterable[Path], phases: Mapping[str, str] | None = None) -> pd.DataFrame:
    """All lm-eval runs under `folders` as one table (MissingSamplesError if any lacks per-sample scores)."""
    return build_table(find_runs(folders), phases)


def save_table(frame: pd.DataFrame, path: Path) -> Path:
    return write_table(frame, Path(path))


def load_table(path: Path) -> pd.DataFrame:
    """A saved table, checked to have every column the analyses use."""
    pd = _deps.pandas()
    try:  # pyarrow's ArrowInvalid and pandas' EmptyDataError are ValueErrors
        frame = pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} could not be read as a results table: {error}") from error
    for column, value in OPTIONAL_COLUMNS.items():
        if column in COLUMNS and column not in frame.columns:
            frame[column] = value
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"{path} is not a longtasks results table: it lacks the column(s) {missing}")
    if frame.empty:
        raise ValueError(f"{path} has the results columns but no rows: nothing to analyse")
    text = {
        column: frame[column].fillna("").astype(str) for column in ("method_args", "doc_hash", "sample_id")
    }
    return frame.assign(**text)  # a CSV reads empty cells as NaN, numeric ids as numbers
