"""Scaling-law fit against held-out truth: predicted vs true accuracy of the held-out cells, a panel per
phase and held-out axis, with R^2, Spearman's rho and MAE over all held-out cells."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from longtasks.analysis import _deps
from longtasks.analysis.plots.style import figure, note, save

if TYPE_CHECKING:
    from longtasks.analysis.scaling import HeldOutResult


def scaling_plot(results: dict[tuple[str, str], HeldOutResult | str], out_dir: Path) -> list[Path]:
    """`results`: (phase, axis) -> a held-out result, or the reason it could not be fitted."""
    plt = _deps.pyplot()
    phases = sorted({phase for phase, _ in results}) or ["prefill"]
    axes_names = sorted({axis for _, axis in results}) or ["length"]
    fig, axes = figure(len(phases), len(axes_names), width=3.8, height=3.6)
    tasks = sorted({t for r in results.values() if not isinstance(r, str) for t in r.predictions["task"]})
    colours = dict(zip(tasks, plt.get_cmap("tab10").colors, strict=False))
    for r, phase in enumerate(phases):
        for c, axis in enumerate(axes_names):
            ax = axes[r, c]
            result = results.get((phase, axis), "not run")
            if isinstance(result, str):
                note(ax, f"{phase}, held-out {axis}:\n{result}")
                continue
            for task, group in result.predictions.groupby("task"):
                ax.scatter(
                    group["accuracy"], group["predicted"], s=14, alpha=0.7, color=colours[task], label=task
                )
            ax.plot([0, 1], [0, 1], color="0.4", linestyle="--", linewidth=1)
            summary = result.per_task.set_index("task").loc["all"]
            ax.set_title(f"{phase}, held-out {axis} = {result.held_out_value:g}\n"
                         f"R²={summary['r2']:.2f}  ρ={summary['spearman_rho']:.2f}  MAE={summary['mae']:.3f}")  # fmt: skip
            ax.set_xlim(-0.03, 1.03)
            ax.set_ylim(-0.03, 1.03)
            ax.set_xlabel("true accuracy")
            ax.set_ylabel("predicted accuracy")
    first = next((ax for ax in axes.flat if ax.get_legend_handles_labels()[0]), None)
    if first is not None:
        first.legend(loc="upper left", fontsize=7)
    fig.suptitle(
        f"Scaling law ({'; '.join(sorted({r.fitted.law.link for r in results.values() if not isinstance(r, str)})) or 'not fitted'} link): held-out predictions"
    )
    return save(fig, out_dir, "scaling_law_heldout")
