"""`longtasks analyze`: every table and plot of the paper's analyses from one results table.

An analysis the data cannot support (one model size for the crossover, two lengths for a held-out length, no
dense baseline, accuracy constant everywhere) is skipped with its reason in the manifest, and its plot panel
says so; the rest still runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from longtasks.analysis import _deps
from longtasks.analysis.frontier import cost_points, crossover_table, pareto_flags
from longtasks.analysis.io import write_json, write_table
from longtasks.analysis.maxcomp import compression_tests, max_compression, summarize_max_compression
from longtasks.analysis.methods import DENSE, PHASES
from longtasks.analysis.options import AnalysisOptions
from longtasks.analysis.scaling import HELD_OUT_AXES, cells_for_phase, fit_law, held_out_fit
from longtasks.analysis.scaling.cells import CELL_KEYS

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
MANIFEST = "analysis.json"


@dataclass
class Outputs:
    out_dir: Path
    tables: dict[str, Path] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self, name: str, frame: pd.DataFrame) -> None:
        self.tables[name] = write_table(frame, self.out_dir / "tables" / f"{name}.csv")

    def skip(self, text: str) -> None:
        log.info("skipped: %s", text)
        self.notes.append(text)


def accuracy_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean score, its standard error and parse rate per (model, task, length, method, compression)."""
    keys = ["model", "model_name", "n_params", "task", "length", "method", "phase", "target_compression"]
    grouped = frame.groupby(keys, dropna=False)
    table = grouped.agg(accuracy=("score", "mean"), sem=("score", "sem"), parsed=("parsed", "mean"),
                        n=("score", "size"), achieved_compression=("achieved_compression", "mean"))  # fmt: skip
    return table.reset_index()


def _scaling(frame: pd.DataFrame, options: AnalysisOptions, out: Outputs) -> dict[tuple[str, str], Any]:
    pd = _deps.pandas()
    params, held, predictions, results = [], [], [], {}
    for phase in PHASES:
        if not (frame["phase"] == phase).any():
            out.skip(f"scaling law, {phase}: no {phase} method was run")
            continue
        cells = cells_for_phase(frame, phase, compression=options.scaling_compression)
        fits: list[tuple[str, Any]] = []
        try:
            fits.append(("none", fit_law(cells, options.law)))
        except ValueError as error:
            out.skip(f"scaling law, {phase}: {error}")
        for axis in HELD_OUT_AXES:
            try:
                result = held_out_fit(cells, axis, options.law)
            except ValueError as error:
                results[(phase, axis)] = str(error)
                out.skip(f"scaling law, {phase}, held-out {axis}: {error}")
                continue
            results[(phase, axis)] = result
            fits.append((axis, result.fitted))
            held.append(
                result.per_task.assign(phase=phase, held_out_axis=axis, held_out_value=result.held_out_value)
            )
            predictions.append(result.predictions.assign(phase=phase, held_out_axis=axis))
        for axis, fitted in fits:
            for name, value in fitted.params.items():
                params.append({"phase": phase, "held_out_axis": axis, "link": fitted.law.link, "parameter": name,
                               "estimate": value, "std_error": fitted.std_errors.get(name), "r2_train": fitted.r2,
                               "n_cells": fitted.n_cells, "notes": "; ".join(fitted.notes)})  # fmt: skip
    out.table("scaling_params", pd.DataFrame(params, columns=["phase", "held_out_axis", "link", "parameter", "estimate",
                                                              "std_error", "r2_train", "n_cells", "notes"]))  # fmt: skip
    held_columns = [
        "phase",
        "held_out_axis",
        "held_out_value",
        "task",
        "n",
        "mae",
        "spearman_rho",
        "spearman_p",
        "r2",
    ]
    out.table(
        "scaling_heldout", pd.concat(held)[held_columns] if held else pd.DataFrame(columns=held_columns)
    )
    prediction_columns = [*CELL_KEYS, "accuracy", "n", "predicted", "phase", "held_out_axis"]
    out.table(
        "scaling_predictions",
        pd.concat(predictions) if predictions else pd.DataFrame(columns=prediction_columns),
    )
    return results


def analyze(frame: pd.DataFrame, out_dir: Path, options: AnalysisOptions | None = None) -> Outputs:
    """Write every table (CSV under `tables/`), every plot (PNG + SVG under `plots/`) and `analysis.json`."""
    options = options or AnalysisOptions()
    out = Outputs(Path(out_dir))
    out.table("accuracy", accuracy_table(frame))
    if not (frame["method"] == DENSE).any():
        out.skip("no dense run: the maximum-compression test and the crossover need the dense baseline")

    points = pareto_flags(cost_points(frame, options.cost))
    out.table("isocost_points", points)
    if points.empty:
        out.skip("isoCost: no model has architecture numbers (config.json), so no cost can be computed")
    gaps, crossover = crossover_table(frame, options.cost, n_boot=options.n_boot, seed=options.seed)
    out.table("crossover_gaps", gaps)
    out.table("crossover", crossover)
    if crossover.empty:
        out.skip(
            "crossover length: needs at least two model sizes with architecture numbers and a sparse method"
        )

    tests = compression_tests(frame, options.test)
    untested = tests[~tests["tested"].astype(bool)]
    if not untested.empty:
        out.skip(
            f"maximum compression: {len(untested)} (method, compression) result(s) have fewer than 2 samples "
            "paired with the dense run (same inputs) and count as not preserving accuracy; run more samples, "
            "with the dense run's --sample-seed"
        )
    maximum = max_compression(tests, options.test)
    out.table("max_compression_tests", tests)
    out.table("max_compression", maximum)
    out.table("max_compression_summary", summarize_max_compression(maximum))

    scaling = _scaling(frame, options, out)
    if options.plots:
        from longtasks.analysis.plots.accuracy import accuracy_vs_compression, accuracy_vs_length
        from longtasks.analysis.plots.isocost import isocost_plot
        from longtasks.analysis.plots.maxcomp import max_compression_plot
        from longtasks.analysis.plots.scaling import scaling_plot

        plots_dir = out.out_dir / "plots"
        out.plots += accuracy_vs_compression(frame, plots_dir)
        out.plots += accuracy_vs_length(frame, plots_dir)
        out.plots += isocost_plot(points, plots_dir)
        out.plots += max_compression_plot(maximum, plots_dir)
        out.plots += scaling_plot(scaling, plots_dir)
    write_json(out.out_dir / MANIFEST, {
        "options": options.to_dict(), "rows": len(frame), "models": sorted(frame["model"].unique()),
        "tables": {k: str(v.relative_to(out.out_dir)) for k, v in out.tables.items()},
        "plots": [str(p.relative_to(out.out_dir)) for p in out.plots], "notes": out.notes,
    })  # fmt: skip
    return out
