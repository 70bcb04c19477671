"""The maximum-compression strip plot (the paper's Fig. 3): a point per task, the mean across tasks as a bar,
and +- one standard deviation, per model size and length; a panel per method."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from longtasks.analysis import _deps
from longtasks.analysis.plots.style import (
    figure,
    length_label,
    log_ticks,
    model_names,
    note,
    save,
    with_variant_labels,
)

if TYPE_CHECKING:
    import pandas as pd


def max_compression_plot(maximum: pd.DataFrame, out_dir: Path) -> list[Path]:
    plt = _deps.pyplot()
    maximum = with_variant_labels(maximum)
    methods = sorted(maximum["method"].unique()) or ["(none)"]
    fig, axes = figure(1, len(methods), width=4.6, height=3.6)
    models = list(maximum.sort_values("n_params")["model"].unique())
    names = model_names(models)
    colours = dict(zip(models, plt.get_cmap("tab10").colors, strict=False))
    rng = np.random.default_rng(0)
    for ax, method in zip(axes.flat, methods, strict=False):
        data = maximum[maximum["method"] == method]
        if data.empty:
            note(ax, "no sparse runs with a dense baseline to test against")
            continue
        lengths = sorted(data["length"].unique())
        width = 0.8 / max(1, len(models))
        for j, model in enumerate(models):
            for i, length in enumerate(lengths):
                values = data[(data["model"] == model) & (data["length"] == length)][
                    "max_compression"
                ].to_numpy(float)
                if values.size == 0:
                    continue
                x = i - 0.4 + width * (j + 0.5)
                jitter = rng.uniform(-width / 5, width / 5, size=values.size)
                ax.scatter(x + jitter, values, s=14, alpha=0.6, color=colours[model],
                           label=names[model][0] if i == 0 else None)  # fmt: skip
                sd = float(values.std(ddof=1)) if values.size > 1 else 0.0
                ax.errorbar(x, values.mean(), yerr=sd, color=colours[model], capsize=3, linewidth=1.2)
                ax.hlines(
                    values.mean(), x - width / 2.5, x + width / 2.5, color=colours[model], linewidth=2.2
                )
        ax.set_xticks(range(len(lengths)), [length_label(v) for v in lengths])
        ax.set_yscale("log")
        log_ticks(ax, [1.0, *data["max_compression"]])
        ax.set_title(f"{method} ({data['phase'].iloc[0]})")
        ax.set_xlabel("length (tokens)")
        ax.set_ylabel("max compression preserving accuracy (x)")
        ax.yaxis.set_minor_formatter(_deps.require("matplotlib.ticker").NullFormatter())
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(handles)))
    fig.suptitle("Largest compression not significantly below dense (points: tasks; bar: mean ± sd)")
    return save(fig, out_dir, "max_compression")
