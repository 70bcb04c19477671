"""`longtasks score`: score a predictions file against a generated dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from longtasks.commands.errors import fail
from longtasks.paths import check_output_file, write_text_atomically


def _question_depth_tasks() -> list[str]:
    """Registered tasks whose answers are ordered lists: only they are scored question by question."""
    from longtasks.registry import TASKS, get_task

    return [name for name in TASKS if get_task(name).answer_kind == "list"]


def register(app: typer.Typer) -> None:
    @app.command("score")
    def score_command(
        # str, not Path: Path("") is ".", and an empty argument must be an error, not the current folder
        predictions: Annotated[str, typer.Argument(help='JSONL of {"id": ..., "prediction": ...} lines.')],
        data: Annotated[str, typer.Option("--data", "-d", help="Output folder of `longtasks generate`.")],
        out: Annotated[
            str | None, typer.Option(help="Write the full report (per sample + summary) as JSON.")
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

        err = Console(stderr=True, soft_wrap=True)
        if not predictions.strip():
            fail(
                'the predictions argument is empty; give a JSONL file of {"id": ..., "prediction": ...} lines'
            )
        if not data.strip():
            fail(
                "--data is empty; give the output folder of `longtasks generate` or one of its .parquet files"
            )
        if out is not None and not out.strip():
            fail("--out is empty; give a file name for the JSON report, e.g. report.json")
        out_path = None if out is None else Path(out)
        try:
            check_output_file(out_path)
            report = score(predictions, data, require_all=require_all)
            table = report.to_table(by)
        except (ValueError, OSError) as error:  # OSError: a predictions or data file that cannot be read
            fail(str(error))
        skipped: list[str] = []
        if by == "question_depth":
            with_depths = {group.task for group in report.summary.by_question_depth}
            skipped = sorted({str(row["task"]) for row in report.per_sample} - with_depths)
            if not with_depths:
                fail(
                    f"--by question_depth: the scored task(s) {', '.join(skipped)} have no per-question depths; "
                    f"only list-answer tasks are scored question by question ({', '.join(_question_depth_tasks())}); "
                    "use --by depth for each sample's mean evidence depth"
                )
        if out_path is not None:  # written before anything is printed: a failed write is the only output
            try:
                write_text_atomically(out_path, report.to_json() + "\n")
            except OSError as error:
                fail(
                    f"--out {out}: could not write the report ({error.strerror or error}); choose another file"
                )
        Console().print(table)
        if skipped:
            err.print(
                f"[yellow]note:[/yellow] {escape(', '.join(skipped))} not shown: only list-answer tasks "
                f"({escape(', '.join(_question_depth_tasks()))}) have per-question depths"
            )
        if report.unfinished:
            parts = [f"{name} has {have} of {want} rows" for name, (have, want) in report.unfinished.items()]
            err.print(
                f"[yellow]warning:[/yellow] the dataset folder is unfinished ({escape('; '.join(parts))}): only "
                "finished rows were scored; re-run its generate command to finish it"
            )
        if report.missing:
            err.print(
                f"[yellow]warning:[/yellow] {report.missing} dataset row(s) had no prediction and scored 0"
            )
        if out_path is not None:
            err.print(f"report written to {escape(out)}")
