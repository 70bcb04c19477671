"""Per-sample results -> the cells a scaling law is fitted on: mean accuracy per (model, task, length, method,
compression) within one phase. Dense runs (C = 1) belong to both phases."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from longtasks.analysis.methods import DENSE

if TYPE_CHECKING:
    import pandas as pd

CELL_KEYS = ["model", "model_name", "n_params", "task", "length", "method", "method_args", "compression"]
"""A method run with other arguments is its own cell (its own observation of the law), never pooled."""


def cells_for_phase(
    frame: pd.DataFrame, phase: str, methods: Iterable[str] | None = None, compression: str = "target"
) -> pd.DataFrame:
    """Cells of one phase: columns CELL_KEYS + accuracy (mean score) + n (samples).

    `methods` restricts the sparse methods (e.g. the paper's Vertical-Slash for prefill); `compression` is
    "target" (the requested ratio) or "achieved" (the measured one, where sparse-hf reported it)."""
    if compression not in ("target", "achieved"):
        raise ValueError(f"compression must be 'target' or 'achieved', got {compression!r}")
    chosen = frame[(frame["phase"] == phase) | (frame["method"] == DENSE)]
    if methods is not None:
        keep = {*methods, DENSE}
        chosen = chosen[chosen["method"].isin(keep)]
    args = chosen["method_args"].fillna("").astype(str) if "method_args" in chosen else ""
    chosen = chosen.assign(compression=chosen[f"{compression}_compression"].astype(float), method_args=args)
    if compression == "achieved" and chosen["compression"].isna().any():
        lacking = chosen[chosen["compression"].isna()][
            ["model", "method", "target_compression"]
        ].drop_duplicates()
        shown = ", ".join(f"{m} {meth} {c:g}x" for m, meth, c in lacking.head(3).itertuples(index=False))
        more = f" and {len(lacking) - 3} more" if len(lacking) > 3 else ""
        raise ValueError(
            f"some runs carry no achieved compression (no sparse-hf report): {shown}{more}; use the target "
            "compression instead"
        )
    cells = chosen.groupby(CELL_KEYS, dropna=False)["score"].agg(accuracy="mean", n="size").reset_index()
    return cells.astype({"n_params": float, "length": float, "compression": float})
