"""Bootstrap replicates of every configuration's per-task accuracy, resampling inputs, not rows: one draw of
sample indices per (model, task, length) is shared by all of that model's configurations, because they ran on
the same inputs (paired)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from longtasks.analysis.frontier.points import CONFIG

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def _doc_key(frame: pd.DataFrame) -> pd.Series:
    return frame["doc_hash"].where(frame["doc_hash"].astype(str) != "", frame["sample_id"]).astype(str)


def task_replicates(
    frame: pd.DataFrame, n_boot: int, seed: int
) -> dict[tuple[str, int, str], tuple[list[tuple], np.ndarray]]:
    """(model, length, task) -> (configurations, accuracies of shape (n_boot, n_configs)); replicate 0 is the
    observed accuracy, the others resample the inputs with replacement."""
    rng = np.random.default_rng(seed)
    out = {}
    keyed = frame.assign(_doc=_doc_key(frame))
    for (model, length, task), group in keyed.groupby(["model", "length", "task"], sort=True):
        table = group.groupby([*CONFIG[1:], "_doc"], dropna=False)["score"].mean().unstack("_doc")
        complete = table.dropna(axis=1)
        if complete.shape[1] < table.shape[1]:
            log.warning("%s, %s, length %s: %d input(s) not run by every configuration are left out of the bootstrap",
                        model, task, length, table.shape[1] - complete.shape[1])  # fmt: skip
        scores = complete.to_numpy(float)  # (configs, docs)
        n = scores.shape[1]
        if n == 0:
            continue
        counts = np.vstack([np.ones((1, n)), rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot - 1)])
        configs = [(model, *index) for index in complete.index]
        out[(model, int(length), task)] = (configs, counts @ scores.T / n)
    return out
