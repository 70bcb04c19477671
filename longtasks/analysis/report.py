"""`longtasks analyze`: every table and plot of the paper's analyses from one results table.

An analysis the data cannot support (one model size for the crossover, two lengths for a held-out length, no
dense baseline, accuracy constant everywhere) is skipped with its reason in the manifest, and its plot panel
says so; the rest still runs. What was repaired before the analyses (rows read twice, estimated parameter
counts, unscorable samples left out) is noted there too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from longtasks.analysis import _deps
from longtasks.analysis.frontier import cost_points, crossover_table, pareto_flags
from longtasks.analysis.io import staged_folder, write_json, write_table
from longtasks.analysis.maxcomp import compression_tests, max_compression, summarize_max_compression
from longtasks.analysis.maxcomp.table import missing_dense
from longtasks.analysis.methods import DENSE, PHASES
from longtasks.analysis.options import AnalysisOptions
from longtasks.analysis.prepare import prepare
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
        log.info("note: %s", text)
        self.notes.append(text)

    def moved_to(self, final: Path) -> Outputs:
        """The same outputs, with paths under `final` (where the staged folder's files were moved)."""
        move = lambda path: final / path.relative_to(self.out_dir)  # noqa: E731
        tables = {name: move(path) for name, path in self.tables.items()}
        return Outputs(final, tables, [move(path) for path in self.plots], list(self.notes))


def accuracy_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean score, its standard error and parse rate per (model, task, length, method with its arguments,
    compression)."""
    keys = ["model", "model_name", "n_params", "task", "length", "method", "method_args", "phase",
            "target_compression"]  # fmt: skip
    args = frame["method_args"].fillna("").astype(str) if "method_args" in frame else ""
    grouped = frame.assign(method_args=args).groupby(keys, dropna=False)
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
        try:
            cells = cells_for_phase(frame, phase, compression=options.scaling_compression)
        except ValueError as error:  # achieved compression asked for, but some run did not record it
            out.skip(f"scaling law, {phase}: {error} (rerun with --scaling-compression target)")
            continue
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


def _crossover_reason(frame: pd.DataFrame, points: pd.DataFrame) -> str:
    """What the crossover length lacks in these results, in the user's terms."""
    if not (frame["method"] == DENSE).any():
        return "no dense run"
    if not (frame["method"] != DENSE).any():
        return "no sparse method was run"
    with_arch = sorted(points["model"].unique()) if not points.empty else []
    if len(with_arch) < 2:
        shown = ", ".join(with_arch) or "none"
        return f"needs two model sizes with architecture numbers (config.json); the models with them: {shown}"
    sizes = points.groupby("model")["n_params"].first()
    if sizes.dropna().nunique() < 2:
        unknown = sorted(sizes.index[sizes.isna()])
        missing = (
            f"no parameter count for {', '.join(unknown)}" if unknown else "every model has the same one"
        )
        return f"needs two different parameter counts; {missing}"
    return "no pair of model sizes was run with the same sparse method at a common length"


def _test_notes(frame: pd.DataFrame, tests: pd.DataFrame, out: Outputs) -> None:
    """What the maximum-compression tests left out, and why."""
    has_dense = (frame["method"] == DENSE).any()  # else one note already says there is no dense run
    for model, lengths in missing_dense(frame).items() if has_dense else []:
        out.skip(
            f"maximum compression: no dense run of {model} at length(s) {lengths} (for some or every task), "
            "so its sparse results there are not tested; run its dense baseline on the same inputs"
        )
    dropped = int(tests["n_nonfinite"].sum()) if not tests.empty else 0
    if dropped:
        out.skip(
            f"maximum compression: {dropped} sample score(s) were not finite (NaN: no score) and were left out "
            "of the tests (with their partner when paired); see n_nonfinite in max_compression_tests"
        )
    untested = tests[~tests["tested"].astype(bool)]
    if not untested.empty:
        out.skip(
            f"maximum compression: {len(untested)} (method, compression) result(s) have fewer than 2 finite "
            "samples paired with the dense run (same inputs), so no test could be computed; they count as not "
            "preserving accuracy. Run more samples, with the dense run's --sample-seed"
        )


def analyze(frame: pd.DataFrame, out_dir: Path, options: AnalysisOptions | None = None) -> Outputs:
    """Write every table (CSV under `tables/`), every plot (PNG + SVG under `plots/`) and `analysis.json`.

    Everything is written into a hidden folder beside `out_dir` and moved there at the end: an analysis that
    fails leaves `out_dir` as it was."""
    options = options or AnalysisOptions()
    frame, notes = prepare(frame)
    final = Path(out_dir)
    with staged_folder(final) as stage:
        out = Outputs(stage)
        for text in notes:
            out.skip(text)
        _write_all(frame, out, options)
    return out.moved_to(final)


def _write_all(frame: pd.DataFrame, out: Outputs, options: AnalysisOptions) -> None:
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
        out.skip(f"crossover length: {_crossover_reason(frame, points)}")

    tests = compression_tests(frame, options.test)
    _test_notes(frame, tests, out)
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
