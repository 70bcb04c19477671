"""Bootstrap replicates of every configuration's per-task accuracy, resampling inputs, not rows.

The replicates are paired wherever the inputs are shared: one draw of resampling weights per (task, length,
set of inputs) is used by every configuration that ran that set, of one model (its methods and compressions)
and of every other model that ran the same inputs (same doc hashes), so a gap between two models varies only
as much as their per-input scores differ. Models run on other inputs get their own draw."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from longtasks.analysis.frontier.points import CONFIG, with_method_args
from longtasks.analysis.store.table import input_key

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def _check_unique(group: pd.DataFrame, model: str, task: str, length: int) -> None:
    repeated = group[group.duplicated([*CONFIG[1:], "_doc"], keep=False)]
    if not repeated.empty:
        raise ValueError(
            f"{model}, {task}, length {length}: {len(repeated)} samples of one configuration share an input key, "
            f"e.g. {repeated['_doc'].iloc[0]!r} (the doc_hash, or the sample_id where it is empty); the bootstrap "
            "resamples inputs by this key, so each must be unique: give every sample its doc_hash or a distinct "
            "sample_id"
        )


def task_replicates(
    frame: pd.DataFrame, n_boot: int, seed: int
) -> dict[tuple[str, int, str], tuple[list[tuple], np.ndarray]]:
    """(model, length, task) -> (configurations, accuracies of shape (n_boot, n_configs)); replicate 0 is the
    observed accuracy, the others resample the inputs with replacement (weights shared by every model that ran
    the same inputs)."""
    rng = np.random.default_rng(seed)
    out = {}
    keyed = with_method_args(frame)
    keyed = keyed.assign(_doc=input_key(keyed))
    draws: dict[tuple, np.ndarray] = {}  # (length, task, inputs) -> resampling counts (n_boot, n_inputs)
    for (length, task, model), group in keyed.groupby(["length", "task", "model"], sort=True):
        _check_unique(group, model, task, length)
        table = group.groupby([*CONFIG[1:], "_doc"], dropna=False)["score"].mean().unstack("_doc")
        complete = table.dropna(axis=1)
        if complete.shape[1] < table.shape[1]:
            log.warning("%s, %s, length %s: %d input(s) not run (or not scored) by every configuration are left "
                        "out of the bootstrap", model, task, length, table.shape[1] - complete.shape[1])  # fmt: skip
        scores = complete.to_numpy(float)  # (configs, docs)
        n = scores.shape[1]
        if n == 0:
            continue
        inputs = (int(length), task, tuple(complete.columns))
        if inputs not in draws:
            draws[inputs] = np.vstack(
                [np.ones((1, n)), rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot - 1)]
            )
        configs = [(model, *index) for index in complete.index]
        out[(model, int(length), task)] = (configs, draws[inputs] @ scores.T / n)
    return out
