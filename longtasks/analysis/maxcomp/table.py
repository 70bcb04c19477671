"""The test table (one row per model, length, task, method and compression) and the maximum-compression
table (one row per model, length, task and method), from the tidy per-sample results."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from longtasks.analysis import _deps
from longtasks.analysis.maxcomp.options import DEFAULT_TEST, TestOptions
from longtasks.analysis.maxcomp.significance import adjust, drop_p_value, finite_samples
from longtasks.analysis.methods import DENSE
from longtasks.analysis.store.table import input_key

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
CELL = ["model", "model_name", "n_params", "length", "task"]
TEST_COLUMNS = [
    *CELL, "method", "method_args", "phase", "compression", "achieved_compression", "n_dense", "n_sparse",
    "n_pairs", "n_nonfinite", "dense_mean", "sparse_mean", "difference", "p_value", "p_adjusted", "tested",
    "significant_drop",
]  # fmt: skip
MAX_COLUMNS = [*CELL, "method", "method_args", "phase", "max_compression", "compressions_tested", "n_samples"]


def _with_method_args(frame: pd.DataFrame) -> pd.DataFrame:
    """`method_args` as text ("" where absent): a variant of a method is its own result, never pooled."""
    args = frame["method_args"].fillna("").astype(str) if "method_args" in frame else ""
    return frame.assign(method_args=args)


def _scores_by_input(rows: pd.DataFrame, label: str) -> pd.Series:
    """Scores indexed by input key; ValueError if two samples share one (pairing would be by chance)."""
    scores = rows.assign(key=input_key(rows)).set_index("key")["score"]
    repeated = scores.index[scores.index.duplicated()].unique()
    if len(repeated):
        raise ValueError(
            f"{label}: {len(repeated)} input key(s) belong to more than one sample, e.g. {repeated[0]!r} (the "
            "doc_hash, or the sample_id where it is empty); samples are paired by it, so each must be unique: "
            "give every sample its doc_hash or a distinct sample_id"
        )
    return scores


def _test_one(
    dense: pd.DataFrame, sparse: pd.DataFrame, options: TestOptions, label: str
) -> dict[str, float]:
    if options.paired:
        left = _scores_by_input(dense, f"the dense run of {label}")
        right = _scores_by_input(sparse, label)
        keys = left.index.intersection(right.index)
        if len(keys) < min(len(left), len(right)):
            log.warning("%d sample(s) have no partner with the same input and are left out of the paired test",
                        len(left) + len(right) - 2 * len(keys))  # fmt: skip
        d, s = left.loc[keys].to_numpy(float), right.loc[keys].to_numpy(float)
        n_pairs = len(keys)
    else:
        d, s = dense["score"].to_numpy(float), sparse["score"].to_numpy(float)
        n_pairs = 0
    kept_d, kept_s = finite_samples(d, s, options.paired)
    dropped = (d.size - kept_d.size) if options.paired else (d.size - kept_d.size + s.size - kept_s.size)
    p = drop_p_value(d, s, options) if min(d.size, s.size) >= 2 else np.nan
    mean = lambda x: float(x.mean()) if x.size else np.nan  # noqa: E731 (no pairs: no mean, no warning)
    return {"n_pairs": n_pairs, "n_nonfinite": int(dropped), "dense_mean": mean(kept_d),
            "sparse_mean": mean(kept_s), "p_value": p}  # fmt: skip


def missing_dense(frame: pd.DataFrame) -> dict[str, list[int]]:
    """Model -> the lengths where it has sparse results but, for some task, no dense run to test them with."""
    dense = set(
        map(tuple, frame.loc[frame["method"] == DENSE, ["model", "length", "task"]].to_numpy().tolist())
    )
    sparse = frame.loc[frame["method"] != DENSE, ["model", "length", "task"]].drop_duplicates()
    out: dict[str, list[int]] = {}
    for model, length, task in sparse.itertuples(index=False):
        if (model, length, task) not in dense:
            out.setdefault(str(model), [])
            if int(length) not in out[str(model)]:
                out[str(model)].append(int(length))
    return {model: sorted(lengths) for model, lengths in out.items()}


def compression_tests(frame: pd.DataFrame, options: TestOptions = DEFAULT_TEST) -> pd.DataFrame:
    """Test every sparse (method, method arguments, compression) against the same model's dense run at the same
    length and task."""
    pd = _deps.pandas()
    frame = _with_method_args(frame)
    rows = []
    dense_rows = frame[frame["method"] == DENSE]
    sparse_rows = frame[frame["method"] != DENSE]
    dense_by_cell = {key: group for key, group in dense_rows.groupby(["model", "length", "task"])}
    variants = sparse_rows.groupby(["model", "length", "task", "method", "method_args"])
    for (model, length, task, method, args), group in variants:
        dense = dense_by_cell.get((model, length, task))
        if dense is None:
            log.warning("no dense run of %s at length %s on %s: its %s results are not tested",
                        model, length, task, method)  # fmt: skip
            continue
        family = []
        for compression, cell in sorted(group.groupby("target_compression"), key=lambda kv: kv[0]):
            first = cell.iloc[0]
            variant = f"{method} {args}" if args else method
            label = f"{model} {variant} {compression:g}x on {task} at length {length}"
            family.append({
                "model": model, "model_name": first["model_name"], "n_params": first["n_params"], "length": length,
                "task": task, "method": method, "method_args": args, "phase": first["phase"],
                "compression": float(compression), "achieved_compression": float(cell["achieved_compression"].mean()),
                "n_dense": len(dense), "n_sparse": len(cell), **_test_one(dense, cell, options, label),
            })  # fmt: skip
        # A compression whose test could not be computed (fewer than 2 finite, paired samples) has no p-value:
        # it is left out of the correction and never counts as preserving accuracy (`tested` False), instead
        # of passing as "no significant drop".
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
    """Per (model, length, task, method, method arguments): the largest compression tested and not
    significantly below dense (1 = none); an untested compression (too few samples) counts as not preserving
    accuracy."""
    pd = _deps.pandas()
    rows = []
    tests = _with_method_args(tests)
    for key, group in tests.groupby(["model", "length", "task", "method", "method_args"], sort=True):
        first = group.iloc[0]
        compressions = group["compression"].tolist()
        rows.append({
            **{column: first[column] for column in CELL}, "method": key[3], "method_args": key[4],
            "phase": first["phase"],
            "max_compression": _largest_passing(
                compressions, (group["tested"] & ~group["significant_drop"]).tolist(), options.rule
            ),
            "compressions_tested": ",".join(f"{c:g}" for c in sorted(compressions)), "n_samples": int(first["n_dense"]),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=MAX_COLUMNS)


def summarize_max_compression(maximum: pd.DataFrame) -> pd.DataFrame:
    """Mean +- sd of the maximum compression across tasks, per (model, length, method and its arguments): the
    paper's bars."""
    maximum = _with_method_args(maximum)
    keys = ["model", "model_name", "n_params", "length", "method", "method_args", "phase"]
    grouped = maximum.groupby(keys, dropna=False)
    summary = grouped["max_compression"].agg(["mean", "std", "min", "count"]).reset_index()
    return summary.rename(columns={"mean": "mean_max_compression", "std": "sd_max_compression",
                                   "min": "min_max_compression", "count": "n_tasks"})  # fmt: skip
