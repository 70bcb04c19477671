"""`longtasks analyze`: the paper's tables and plots from lm-eval output folders or a results table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from longtasks.commands.errors import fail
from longtasks.commands.values import whole_number
from longtasks.paths import check_output_folder

console = Console(stderr=True)

HELP = """Tables and plots of the paper's analyses from your results.

\b
Examples:
  longtasks analyze sweep/results.parquet --out analysis/
  longtasks analyze results/ more-results/ --out analysis/ --test paired-bootstrap --correction holm

INPUTS are `longtasks sweep` tables (.parquet) or lm-eval output folders (`longtasks eval ... --output_path DIR
--log_samples`; per-sample scores are required). Writes OUT/results.parquet (when read from folders), OUT/tables/*.csv
(accuracy, isoCost points with the Pareto frontier, crossover lengths, maximum-compression tests and maxima,
scaling-law parameters and held-out metrics), OUT/plots/*.png + .svg and OUT/analysis.json (options, files and
the analyses the data could not support, with why). A row measured in two inputs counts once: the later
input's. Nothing is written when the analysis fails.
"""


def parse_phases(items: list[str] | None) -> dict[str, str]:
    """--phase METHOD=prefill|decode items as {method: phase}; shared with `sweep`, so that both commands
    refuse the same malformed item instead of one of them dropping it."""
    out = {}
    for item in items or []:
        method, sep, phase = item.partition("=")
        if not sep or not method.strip() or not phase.strip():
            raise ValueError(f"--phase takes METHOD=prefill|decode (e.g. my_method=prefill), got {item!r}")
        out[method.strip()] = phase.strip()
    return out


def read_inputs(inputs: list[Path], phases: dict[str, str]) -> tuple[list[Any], Any]:
    """The inputs' tables in command-line order (the analysis keeps the later of two rows measuring the same
    thing), the lm-eval folders read together at the first folder's place; and that folders' table, if any."""
    from longtasks.analysis.store import load_table, read_results

    is_table = [p.is_file() and p.suffix in (".parquet", ".csv") for p in inputs]
    folders = [p for p, table in zip(inputs, is_table, strict=True) if not table]
    read = read_results(folders, phases) if folders else None
    frames, placed = [], False
    for path, table in zip(inputs, is_table, strict=True):
        if table:
            frames.append(load_table(path))
        elif not placed:
            frames.append(read)
            placed = True
    return frames, read


def register(app: typer.Typer) -> None:
    @app.command("analyze", help=HELP)
    def analyze_command(
        inputs: Annotated[
            list[Path], typer.Argument(help="Results tables (.parquet/.csv) or lm-eval output folders.")
        ],
        out: Annotated[Path, typer.Option(help="Folder for tables, plots and the manifest.")],
        test: Annotated[
            str, typer.Option(help="paired-t, paired-bootstrap, paired-permutation or welch.")
        ] = "paired-t",
        alpha: Annotated[float, typer.Option(help="Significance level of each test.")] = 0.05,
        alternative: Annotated[
            str, typer.Option(help="less (one-sided: sparse below dense) or two-sided.")
        ] = "less",
        correction: Annotated[
            str, typer.Option(help="none, holm, bonferroni or fdr_bh (over a cell's compressions).")
        ] = "none",
        rule: Annotated[
            str, typer.Option(help="largest passing compression, or sequential (stop at the first drop).")
        ] = "largest",
        cost_convention: Annotated[
            str,
            typer.Option(
                help="quadratic (Eq. 3: sparsity scales only the L^2 terms) or attention (all of attention)."
            ),
        ] = "quadratic",
        batch_size: Annotated[
            int, typer.Option(parser=whole_number(1), help="Batch size B of the cost model.")
        ] = 1,
        indexing_dim: Annotated[str, typer.Option(help="d (as printed in Eqs. 9-10) or head_dim.")] = "d",
        link: Annotated[str, typer.Option(help="Scaling-law link: logistic or linear.")] = "logistic",
        reference_task: Annotated[
            str | None, typer.Option(help="Task absorbed in the intercept [first task].")
        ] = None,
        scaling_compression: Annotated[
            str, typer.Option(help="target or achieved compression on the C axis.")
        ] = "target",
        n_boot: Annotated[
            int, typer.Option(parser=whole_number(1), help="Bootstrap replicates of the crossover length.")
        ] = 1000,
        seed: Annotated[int, typer.Option(parser=whole_number(), help="Seed of every resampling.")] = 0,
        phase: Annotated[
            list[str] | None, typer.Option(help="METHOD=prefill|decode for an unknown method.")
        ] = None,
        plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Draw the plots.")] = True,
    ) -> None:
        try:
            check_output_folder(out)
            from longtasks.analysis.cost import CostOptions
            from longtasks.analysis.maxcomp import TestOptions
            from longtasks.analysis.options import AnalysisOptions
            from longtasks.analysis.report import analyze
            from longtasks.analysis.scaling import ScalingLaw
            from longtasks.analysis.store import save_table

            options = AnalysisOptions(
                test=TestOptions(test=test, alpha=alpha, alternative=alternative, correction=correction, rule=rule,
                                 seed=seed),
                cost=CostOptions(convention=cost_convention, batch_size=batch_size, indexing_dim=indexing_dim),
                law=ScalingLaw(link=link, reference_task=reference_task), scaling_compression=scaling_compression,
                n_boot=n_boot, seed=seed, plots=plots, phases=parse_phases(phase),
            )  # fmt: skip
            import pandas as pd

            frames, read = read_inputs(inputs, options.phases)
            frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            with console.status("analysing ..."):
                result = analyze(frame, out, options)
            if read is not None:  # only once the analysis succeeded: a failed one leaves no output
                save_table(read, out / "results.parquet")
        except (ImportError, ValueError, OSError) as error:  # OSError: a missing input, an unwritable output
            fail(str(error))
        for note in result.notes:
            console.print(f"[yellow]note:[/yellow] {escape(note)}", soft_wrap=True)
        console.print(
            f"{len(result.tables)} tables in {out / 'tables'}, {len(result.plots)} plot files in {out / 'plots'}",
            markup=False,
        )
