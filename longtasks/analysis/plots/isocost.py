"""The isoCost scatter (the paper's Fig. 1/2): accuracy against cost per phase and length, a marker per model,
colour = compression, the Pareto frontier dotted."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from longtasks.analysis import _deps
from longtasks.analysis.plots.style import figure, length_label, log_ticks, model_names, note, save

if TYPE_CHECKING:
    import pandas as pd

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
AXIS = {"prefill": "prefill FLOPs", "decode": "decode memory reads / step (elements)"}


def isocost_plot(points: pd.DataFrame, out_dir: Path) -> list[Path]:
    """`points`: `cost_points` with `on_frontier`. One row of panels per phase, one column per length."""
    plt = _deps.pyplot()
    colors = _deps.require("matplotlib.colors")
    ticker = _deps.require("matplotlib.ticker")
    phases = [p for p in ("prefill", "decode") if p in set(points["phase"])] or ["prefill"]
    lengths = sorted(points["length"].unique()) or [0]
    fig, axes = figure(len(phases), len(lengths), width=4.2, height=3.4)
    models = list(points.sort_values("n_params")["model"].unique())
    names = model_names(models)
    top = max(2.0, float(points["cost_compression"].max())) if len(points) else 2.0
    norm = colors.LogNorm(vmin=1.0, vmax=top)
    cmap = plt.get_cmap("viridis")
    for r, phase in enumerate(phases):
        for c, length in enumerate(lengths):
            ax = axes[r, c]
            panel = points[(points["phase"] == phase) & (points["length"] == length)]
            if panel.empty:
                note(ax, "no points (no architecture or no runs)")
                continue
            for i, model in enumerate(models):
                mine = panel[panel["model"] == model]
                ax.scatter(mine["cost"], mine["accuracy"], c=mine["cost_compression"], cmap=cmap, norm=norm,
                           marker=MARKERS[i % len(MARKERS)], s=36, edgecolors="black", linewidths=0.4,
                           label=names[model][0])  # fmt: skip
            front = panel[panel["on_frontier"]].sort_values("cost")
            ax.plot(
                front["cost"],
                front["accuracy"],
                linestyle=":",
                color="0.3",
                linewidth=1.2,
                label="Pareto frontier",
            )
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.set_ylim(-0.03, 1.03)
            ax.set_title(f"{phase}, {length_label(length)} tokens")
            ax.set_xlabel(AXIS[phase])
            ax.set_ylabel("accuracy (mean over tasks)")
    axes.flat[0].legend(loc="best")
    mappable = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    mappable.set_array(np.array([]))
    bar = fig.colorbar(mappable, ax=axes, label="compression (x)", shrink=0.8)
    log_ticks(bar.ax, [1.0, top])
    bar.ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    fig.suptitle("Accuracy vs cost (isoCost)")
    return save(fig, out_dir, "isocost")
