"""The results store: lm-eval output folders (`--output_path` with `--log_samples`) as one tidy per-sample
table, one row per (run, task, sample), saved as parquet."""

from longtasks.analysis.store.runs import MissingSamplesError, Run, find_runs
from longtasks.analysis.store.table import COLUMNS, build_table, load_table, read_results, save_table

__all__ = [
    "COLUMNS",
    "MissingSamplesError",
    "Run",
    "build_table",
    "find_runs",
    "load_table",
    "read_results",
    "save_table",
]
