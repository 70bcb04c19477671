"""`longtasks list`, `longtasks generate`, `longtasks show`."""

from __future__ import annotations

import dataclasses
import shlex
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from longtasks.commands.errors import fail
from longtasks.commands.values import whole_number
from longtasks.lengths import format_length, parse_lengths
from longtasks.paths import check_output_folder
from longtasks.registry import get_task, list_tasks
from longtasks.tokenizer import DEFAULT_TOKENIZER

console = Console(stderr=True)


def parse_knob_options(options: list[str], tasks: list[str]) -> dict[str, dict[str, Any]]:
    """``--knob num_questions=8`` applies to every task that has the knob; ``--knob story_multihop.hops=2``
    to one task. Unknown knobs are an error."""
    result: dict[str, dict[str, Any]] = {t: {} for t in tasks}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise ValueError(f"--knob {option!r}: use NAME=VALUE or TASK.NAME=VALUE")
        task, dot, name = key.rpartition(".")
        targets = [task] if dot else tasks
        matched = False
        for target in targets:
            if target not in result:
                raise ValueError(f"--knob {option!r}: task {target!r} is not among {tasks}")
            fields = get_task(target).knobs_type.__dataclass_fields__
            if name in fields:
                result[target][name] = value
                matched = True
        if not matched:
            raise ValueError(f"--knob {option!r}: no selected task has a knob named {name!r}")
    return result


def _command_line(
    tasks: list[str], lengths: list[int], num_samples: int, seed: int, tokenizer: str, chat: bool,
    knobs: dict[str, dict[str, Any]], out: Path,
) -> str:  # fmt: skip
    """The exact command that regenerates this output (every setting explicit)."""
    parts = ["longtasks", "generate", *tasks, "--lengths", ",".join(format_length(n) for n in lengths)]
    parts += ["--num-samples", str(num_samples), "--seed", str(seed), "--tokenizer", tokenizer]
    parts.append("--chat" if chat else "--no-chat")
    for task, values in _with_run_time_defaults(tasks, knobs).items():
        for name, value in sorted(values.items()):
            parts += ["--knob", f"{task}.{name}={value}"]
    parts += ["--out", str(out)]
    return shlex.join(parts)


def _with_run_time_defaults(tasks: list[str], knobs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The given knobs plus those whose default is computed when the run starts (a `default_factory`, e.g. a QA
    source read from LONGTASKS_QA_SOURCE_*): the recorded command must not depend on this shell's environment."""
    explicit = {task: dict(values) for task, values in knobs.items()}
    for task in tasks:
        try:
            effective = get_task(task).make_knobs(knobs.get(task))
        except (KeyError, ValueError):  # reported by generate_to_dir, with the rest of the checks
            continue
        for knob in dataclasses.fields(effective):
            runtime = knob.default_factory is not dataclasses.MISSING
            if runtime and knob.name not in explicit.get(task, {}):
                explicit.setdefault(task, {})[knob.name] = getattr(effective, knob.name)
    return explicit


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def register(app: typer.Typer) -> None:
    @app.command("list")
    def list_command() -> None:
        """List the tasks with their knobs and defaults."""
        table = Table(title="longtasks tasks")
        table.add_column("task")
        table.add_column("family")
        table.add_column("answer")
        table.add_column("description")
        table.add_column("knobs (defaults)", overflow="fold")  # piped output is 80 columns: wrap, never cut
        for name in list_tasks():
            task = get_task(name)
            try:
                defaults = task.make_knobs()
                knobs = ", ".join(f"{k}={v}" for k, v in defaults.__dict__.items())
            except ValueError as error:  # a default from the environment (a QA source) that does not work
                knobs = f"(defaults unusable here: {error})"
            # a default can come from the environment (a QA source path): printed as written, never as markup
            table.add_row(name, task.family, task.answer_kind, escape(task.description), escape(knobs))
        console = Console()
        if not console.is_terminal:  # a file or a pipe: wide enough that knob lists stay on few lines
            console = Console(width=160)
        console.print(table)

    @app.command("generate")
    def generate_command(
        tasks: Annotated[list[str], typer.Argument(help="Task names (see `longtasks list`).")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created; resumable).")],
        lengths: Annotated[str, typer.Option(help="Comma-separated lengths: 4096, 4k, 32k, 1M.")] = "4k",
        num_samples: Annotated[
            int,
            typer.Option("--num-samples", "-n", parser=whole_number(1), help="Samples per task and length."),
        ] = 100,
        seed: Annotated[int, typer.Option(parser=whole_number())] = 0,
        tokenizer: Annotated[
            str, typer.Option(help="'qwen2.5' (built in, offline), a Hub name or a local tokenizer folder.")
        ] = DEFAULT_TOKENIZER,
        chat: Annotated[
            bool, typer.Option("--chat/--no-chat", help="Count the tokenizer's chat template in `length`.")
        ] = False,
        knob: Annotated[
            list[str] | None, typer.Option(help="Task knob NAME=VALUE or TASK.NAME=VALUE (repeatable).")
        ] = None,
        workers: Annotated[
            int, typer.Option(parser=whole_number(1), help="Processes generating in parallel.")
        ] = 1,
        overwrite: Annotated[bool, typer.Option(help="Replace configs made with other settings.")] = False,
        progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    ) -> None:
        """Generate tasks at exact lengths into OUT (one parquet config per task x length)."""
        from longtasks.dataset_dir import config_name, generate_to_dir

        try:
            check_output_folder(out)
            parsed_lengths = parse_lengths(lengths)
            for name in tasks:
                get_task(name)
            knobs = parse_knob_options(knob or [], tasks)
        except ValueError as error:
            fail(str(error))
        # SIGTERM (a scheduler's kill) unwinds like Ctrl-C: worker processes are stopped, finished shards
        # stay, and the same command resumes.
        signal.signal(signal.SIGTERM, _interrupt)
        command = _command_line(tasks, parsed_lengths, num_samples, seed, tokenizer, chat, knobs, out)
        try:
            manifest = generate_to_dir(
                out, tasks, parsed_lengths, num_samples=num_samples, seed=seed, tokenizer=tokenizer,
                chat=chat, knobs=knobs, workers=workers, overwrite=overwrite, progress=progress, command=command,
            )  # fmt: skip
        except ValueError as error:
            fail(str(error))
        except OSError as error:  # e.g. the disk filled up, or the folder became unwritable mid-run
            fail(
                f"generate stopped: {error}; finished shards in {out} are kept and nothing half-written is left: "
                "fix the cause and run the same command again"
            )
        except KeyboardInterrupt as interrupt:
            console.print(
                f"[yellow]interrupted:[/yellow] finished shards in {escape(str(out))} are kept and nothing "
                "half-written is left; run the same command again to resume"
            )
            raise typer.Exit(130) from interrupt
        finally:
            # Past this point there is nothing to unwind: a late SIGTERM just ends the process.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        names = [config_name(t, n) for t in tasks for n in parsed_lengths]
        console.print(
            f"wrote {len(names)} config(s) to {out}: {', '.join(names)}", markup=False, soft_wrap=True
        )
        console.print(
            f"tokenizer: {manifest['tokenizer']} ({manifest['tokenizer_revision']})",
            markup=False,
            soft_wrap=True,
        )

    @app.command("show")
    def show_command(
        data: Annotated[Path, typer.Argument(help="An output folder or one parquet file.")],
        config: Annotated[str | None, typer.Option(help="Config name, e.g. ruler_niah-4k.")] = None,
        index: Annotated[int, typer.Option(parser=whole_number(), help="Row to show.")] = 0,
        full: Annotated[bool, typer.Option(help="Print the whole prompt instead of its ends.")] = False,
    ) -> None:
        """Show one sample: its settings, question, gold answer, evidence and (the ends of) its prompt."""
        from longtasks.reading import read_rows

        try:
            rows = _rows_of_file(data, config) if data.is_file() else read_rows(data, config)
        except ValueError as error:
            fail(str(error))
        if not 0 <= index < len(rows):
            fail(f"--index {index} is out of range: the data has {len(rows)} rows")
        row = rows[index]
        out = Console()
        table = Table(show_header=False)
        for key in ("id", "task", "family", "length", "input_tokens", "tokenizer", "chat", "seed", "index",
                    "knobs", "answer", "evidence_depths", "meta"):  # fmt: skip
            # Text, not str: answers, knobs and meta are data ("[red] lamp", a path with "[/old]"), never markup
            table.add_row(key, Text(str(row.get(key, ""))))
        out.print(table)
        prompt = row["prompt"]
        if not full and len(prompt) > 3000:
            prompt = prompt[:1500] + f"\n[... {len(prompt) - 3000} characters ...]\n" + prompt[-1500:]
        out.print(prompt, markup=False, highlight=False)


SHOW_COLUMNS = ("id", "task", "length", "prompt", "answer")
"""Columns every longtasks row has and `show` needs; a parquet file without them is some other data."""


def _rows_of_file(path: Path, config: str | None) -> list[dict[str, Any]]:
    """The rows of one parquet file, after checking it holds longtasks rows (of `config`, when given)."""
    import pyarrow.parquet as pq

    from longtasks.dataset_dir import config_name

    try:
        names = set(pq.read_schema(path).names)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{path} is not a parquet file ({error}); give an output folder of `longtasks generate` or one of its "
            "parquet files"
        ) from None
    absent = [name for name in SHOW_COLUMNS if name not in names]
    if absent:
        raise ValueError(
            f"{path} is not a longtasks dataset file: it lacks the column(s) {', '.join(absent)}; give an output "
            "folder of `longtasks generate` or one of its parquet files"
        )
    rows = pq.read_table(path).to_pylist()
    if config is None:
        return rows
    held = list(dict.fromkeys(config_name(str(row["task"]), int(row["length"])) for row in rows))
    if config not in held:
        raise ValueError(
            f"--config {config!r} does not match {path}, which holds {', '.join(held) or 'no rows'}; drop --config "
            "when DATA is one parquet file, or give the output folder"
        )
    return [row for row in rows if config_name(str(row["task"]), int(row["length"])) == config]
