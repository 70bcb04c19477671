"""The test table (one row per model, length, task, method and compression) and the maximum-compression
table (one row per model, length, task and method), from the tidy per-sample results."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from longtasks.analysis import _deps
from longtasks.analysis.maxcomp.options import DEFAULT_TEST, TestOptions
from longtasks.analysis.maxcomp.significance import adjust, drop_p_value
from longtasks.analysis.methods import DENSE

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
CELL = ["model", "model_name", "n_params", "length", "task"]
TEST_COLUMNS = [
    *CELL, "method", "phase", "compression", "achieved_compression", "n_dense", "n_sparse", "n_pairs",
    "dense_mean", "sparse_mean", "difference", "p_value", "p_adjusted", "tested", "significant_drop",
]  # fmt: skip
MAX_COLUMNS = [*CELL, "method", "phase", "max_compression", "compressions_tested", "n_samples"]


def _pair_key(frame: pd.DataFrame) -> pd.Series:
    return frame["doc_hash"].where(frame["doc_hash"].astype(str) != "", frame["sample_id"]).astype(str)


def _test_one(dense: pd.DataFrame, sparse: pd.DataFrame, options: TestOptions) -> dict[str, float]:
    if options.paired:
        left = dense.assign(key=_pair_key(dense)).set_index("key")["score"]
        right = sparse.assign(key=_pair_key(sparse)).set_index("key")["score"]
        keys = left.index.intersection(right.index)
        if len(keys) < min(len(left), len(right)):
            log.warning("%d sample(s) have no partner with the same input and are left out of the paired test",
                        len(left) + len(right) - 2 * len(keys))  # fmt: skip
        d, s = left.loc[keys].to_numpy(), right.loc[keys].to_numpy()
    else:
        d, s = dense["score"].to_numpy(), sparse["score"].to_numpy()
        keys = []
    p = drop_p_value(d, s, options) if min(d.size, s.size) >= 2 else np.nan
    mean = lambda x: float(x.mean()) if x.size else np.nan  # noqa: E731 (no pairs: no mean, no warning)
    return {"n_pairs": len(keys), "dense_mean": mean(d), "sparse_mean": mean(s), "p_value": p}


def compression_tests(frame: pd.DataFrame, options: TestOptions = DEFAULT_TEST) -> pd.DataFrame:
    """Test every sparse (method, compression) against the same model's dense run at the same length and task."""
    pd = _deps.pandas()
    rows = []
    dense_rows = frame[frame["method"] == DENSE]
    sparse_rows = frame[frame["method"] != DENSE]
    dense_by_cell = {key: group for key, group in dense_rows.groupby(["model", "length", "task"])}
    for (model, length, task, method), group in sparse_rows.groupby(["model", "length", "task", "method"]):
        dense = dense_by_cell.get((model, length, task))
        if dense is None:
            log.warning(
                "no dense run of %s at length %s on %s: its %s results are not tested",
                model,
                length,
                task,
                method,
            )
            continue
        family = []
        for compression, cell in sorted(group.groupby("target_compression"), key=lambda kv: kv[0]):
            first = cell.iloc[0]
            family.append({
                "model": model, "model_name": first["model_name"], "n_params": first["n_params"], "length": length,
                "task": task, "method": method, "phase": first["phase"], "compression": float(compression),
                "achieved_compression": float(cell["achieved_compression"].mean()),
                "n_dense": len(dense), "n_sparse": len(cell), **_test_one(dense, cell, options),
            })  # fmt: skip
        # A compression with fewer than 2 (paired) samples has no p-value: it is left out of the correction
        # and never counts as preserving accuracy (`tested` False), instead of passing as "no significant drop".
        tested = [bool(np.isfinite(row["p_value"])) for row in family]
        adjusted = iter(
            adjust([row["p_value"] for row, ok in zip(family, tested, strict=True) if ok], options)
        )
        for row, ok in zip(family, tested, strict=True):
            row["p_adjusted"] = next(adjusted) if ok else np.nan
            row["tested"] = ok
            row["significant_drop"] = bool(ok and row["p_adjusted"] < options.alpha)
            row["difference"] = row["sparse_mean"] - row["dense_mean"]
        rows.extend(family)
    return pd.DataFrame(rows, columns=TEST_COLUMNS)


def _largest_passing(compressions: list[float], passed: list[bool], rule: str) -> float:
    best = 1.0
    for compression, ok in sorted(zip(compressions, passed, strict=True)):
        if not ok:
            if rule == "sequential":
                break
            continue
        best = max(best, compression)
    return best


def max_compression(tests: pd.DataFrame, options: TestOptions = DEFAULT_TEST) -> pd.DataFrame:
    """Per (model, length, task, method): the largest compression tested and not significantly below dense
    (1 = none); an untested compression (too few samples) counts as not preserving accuracy."""
    pd = _deps.pandas()
    rows = []
    for key, group in tests.groupby(["model", "length", "task", "method"], sort=True):
        first = group.iloc[0]
        compressions = group["compression"].tolist()
        rows.append({
            **{column: first[column] for column in CELL}, "method": key[3], "phase": first["phase"],
            "max_compression": _largest_passing(
                compressions, (group["tested"] & ~group["significant_drop"]).tolist(), options.rule
            ),
            "compressions_tested": ",".join(f"{c:g}" for c in sorted(compressions)), "n_samples": int(first["n_dense"]),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=MAX_COLUMNS)


def summarize_max_compression(maximum: pd.DataFrame) -> pd.DataFrame:
    """Mean +- sd of the maximum compression across tasks, per (model, length, method): the paper's bars."""
    grouped = maximum.groupby(["model", "model_name", "n_params", "length", "method", "phase"], dropna=False)
    summary = grouped["max_compression"].agg(["mean", "std", "min", "count"]).reset_index()
    return summary.rename(columns={"mean": "mean_max_compression", "std": "sd_max_compression",
                                   "min": "min_max_compression", "count": "n_tasks"})  # fmt: skip
