"""Accuracy against compression (per task and method) and against length (per method and compression)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from longtasks.analysis import _deps
from longtasks.analysis.methods import DENSE
from longtasks.analysis.plots.style import (
    figure,
    hide_unused,
    length_label,
    log_ticks,
    model_names,
    note,
    save,
    with_variant_labels,
)

if TYPE_CHECKING:
    import pandas as pd

LINESTYLES = ("-", "--", ":", "-.")
ALL_TASKS = "mean over tasks"


def _task_means(frame: pd.DataFrame) -> pd.DataFrame:
    frame = with_variant_labels(frame)
    keys = ["model", "task", "length", "method", "target_compression"]
    means = frame.groupby(keys)["score"].mean().reset_index()
    pooled = means.groupby(["model", "length", "method", "target_compression"])["score"].mean().reset_index()
    return _deps.pandas().concat([means, pooled.assign(task=ALL_TASKS)], ignore_index=True)


def accuracy_vs_compression(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One figure per model: a panel per task (and their mean); a colour per method, a line style per length;
    each method's line starts at the dense accuracy (compression 1)."""
    plt = _deps.pyplot()
    paths = []
    means = _task_means(frame)
    names = model_names(means["model"])
    for model, data in means.groupby("model"):
        tasks = [*sorted(set(data["task"]) - {ALL_TASKS}), ALL_TASKS]
        cols = min(3, len(tasks))
        fig, axes = figure(math.ceil(len(tasks) / cols), cols)
        methods = sorted(set(data["method"]) - {DENSE})
        colours = dict(zip(methods, plt.get_cmap("tab10").colors, strict=False))
        lengths = sorted(data["length"].unique())
        for ax, task in zip(axes.flat, tasks, strict=False):
            cell = data[data["task"] == task]
            if not methods:
                note(ax, "no sparse runs: only dense")
                continue
            for method in methods:
                for i, length in enumerate(lengths):
                    line = cell[(cell["length"] == length) & cell["method"].isin([DENSE, method])]
                    line = line.sort_values("target_compression")
                    ax.plot(line["target_compression"], line["score"], marker="o", ms=3, color=colours[method],
                            linestyle=LINESTYLES[i % len(LINESTYLES)],
                            label=f"{method} @ {length_label(length)}")  # fmt: skip
            ax.set_xscale("log")
            log_ticks(ax, cell["target_compression"], axis="x")
            ax.set_ylim(-0.03, 1.03)
            ax.set_title(task)
            ax.set_xlabel("compression (x)")
            ax.set_ylabel("accuracy")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside right upper")
        hide_unused(axes, len(tasks))
        fig.suptitle(f"Accuracy vs compression — {names[model][0]}")
        paths += save(fig, out_dir, f"accuracy_vs_compression_{names[model][1]}")
    return paths


def accuracy_vs_length(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One figure per model: a panel per sparse method, accuracy (mean over tasks) against length, one line
    per compression (darker = more compressed) and dense in black."""
    plt = _deps.pyplot()
    paths = []
    means = _task_means(frame)
    means = means[means["task"] == ALL_TASKS]
    names = model_names(means["model"])
    for model, data in means.groupby("model"):
        methods = sorted(set(data["method"]) - {DENSE}) or [DENSE]
        fig, axes = figure(1, len(methods))
        compressions = sorted(set(data["target_compression"]) - {1.0})
        cmap = plt.get_cmap("viridis_r")
        for ax, method in zip(axes.flat, methods, strict=False):
            dense = data[data["method"] == DENSE].sort_values("length")
            ax.plot(dense["length"], dense["score"], color="black", marker="o", ms=3, label="dense")
            for i, compression in enumerate(compressions):
                line = data[(data["method"] == method) & (data["target_compression"] == compression)]
                if not line.empty:
                    line = line.sort_values("length")
                    colour = cmap(0.15 + 0.8 * i / max(1, len(compressions) - 1))
                    ax.plot(
                        line["length"],
                        line["score"],
                        marker="o",
                        ms=3,
                        color=colour,
                        label=f"{compression:.3g}x",
                    )
            ax.set_xscale("log", base=2)
            ticks = sorted(data["length"].unique())
            ax.set_xticks(ticks, [length_label(t) for t in ticks])
            ax.set_ylim(-0.03, 1.03)
            ax.set_title(method)
            ax.set_xlabel("length (tokens)")
            ax.set_ylabel("accuracy (mean over tasks)")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside right upper")
        fig.suptitle(f"Accuracy vs length — {names[model][0]}")
        paths += save(fig, out_dir, f"accuracy_vs_length_{names[model][1]}")
    return paths
