"""`longtasks score`: score a predictions file against a generated dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from longtasks.commands.errors import fail
from longtasks.paths import check_output_file, write_text_atomically


def register(app: typer.Typer) -> None:
    @app.command("score")
    def score_command(
        predictions: Annotated[Path, typer.Argument(help='JSONL of {"id": ..., "prediction": ...} lines.')],
        data: Annotated[Path, typer.Option("--data", "-d", help="Output folder of `longtasks generate`.")],
        out: Annotated[
            Path | None, typer.Option(help="Write the full report (per sample + summary) as JSON.")
        ] = None,
        by: Annotated[
            str,
            typer.Option(
                help="Table rows: task_length, task, depth (mean evidence depth of a sample) or question_depth (each retrieval question by its own depth)."
            ),
        ] = "task_length",
        require_all: Annotated[bool, typer.Option(help="Fail if any dataset row has no prediction.")] = False,
    ) -> None:
        """Score predictions exactly (no LLM judge): means with 95% CIs by task, length and depth."""
        from longtasks.scoring import score

        err = Console(stderr=True)
        try:
            check_output_file(out)
            report = score(predictions, data, require_all=require_all)
            table = report.to_table(by)
        except (ValueError, FileNotFoundError) as error:
            fail(str(error))
        Console().print(table)
        if report.unfinished:
            parts = [f"{name} has {have} of {want} rows" for name, (have, want) in report.unfinished.items()]
            err.print(
                f"[yellow]warning:[/yellow] the dataset folder is unfinished ({'; '.join(parts)}): only finished "
                "rows were scored; re-run its generate command to finish it",
                soft_wrap=True,
            )
        if report.missing:
            err.print(
                f"[yellow]warning:[/yellow] {report.missing} dataset row(s) had no prediction and scored 0"
            )
        if out is not None:
            write_text_atomically(out, report.to_json() + "\n")
            err.print(f"report written to {out}")
