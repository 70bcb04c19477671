"""`longtasks eval`: lm-eval's command line with our tasks registered and protected.

Every argument this command does not define goes to lm-eval unchanged (``--model``, ``--model_args``,
``--tasks``, ``--apply_chat_template``, ``--limit``, ``--output_path``, ...). Ours set the generation
settings; they become lm-eval metadata, which the tasks read when they generate their data.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from longtasks.commands.errors import fail
from longtasks.commands.values import whole_number
from longtasks.lengths import parse_lengths
from longtasks.registry import ALL_GROUP, FAMILIES, TASKS, family_group

console = Console(stderr=True)

HELP = f"""Evaluate a model on the longtasks tasks with lm-eval; every option not listed below goes to lm-eval.

\b
Example:
  longtasks eval --lengths 4k,32k --num-samples 100 \\
    --model hf --model_args pretrained=Qwen/Qwen2.5-7B-Instruct,dtype=bfloat16 \\
    --tasks longtasks_all --apply_chat_template --output_path results/

Tasks: {", ".join(TASKS)}. Groups: {", ".join(f"{family_group(f)} (the {f} tasks)" for f in FAMILIES)}, {ALL_GROUP} (all of them). The *_static variants of every task and group read an exported dataset (--data-path: a `longtasks generate --out` folder or a Hub dataset id) instead of generating.

Prompts are exactly the requested length in the model's tokenizer, counting its chat template when --apply_chat_template is given. The model's max_length is set to the longest prompt plus the generation budget, or the run stops before generating if a given max_length is too small. lm-eval's --limit N keeps the first N samples of each task, which are the shortest length's; use --num-samples to shrink every length. lm-eval's own options: `lm-eval run --help`.
"""


def register(app: typer.Typer) -> None:
    @app.command(
        "eval",
        help=HELP,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def eval_command(
        ctx: typer.Context,
        lengths: Annotated[
            str | None,
            typer.Option(help="Prompt lengths in tokens, comma-separated: 4096, 4k, 32k, 1M."),
        ] = None,
        num_samples: Annotated[
            int | None,
            typer.Option("--num-samples", parser=whole_number(1), help="Samples per task and length [100]."),
        ] = None,
        sample_seed: Annotated[
            int | None,
            typer.Option(
                "--sample-seed",
                parser=whole_number(0),
                help="Seed of the generated samples [0] (lm-eval's --seed is separate).",
            ),
        ] = None,
        knob: Annotated[
            list[str] | None,
            typer.Option(
                help="Task knob NAME=VALUE or TASK.NAME=VALUE (repeatable), as in `longtasks generate`."
            ),
        ] = None,
        data_path: Annotated[
            str | None,
            typer.Option(
                "--data-path", help="Static tasks: a `longtasks generate --out` folder or a Hub dataset id."
            ),
        ] = None,
        workers: Annotated[
            int | None, typer.Option(parser=whole_number(1), help="Processes generating samples [1].")
        ] = None,
        progress: Annotated[
            bool, typer.Option("--progress/--no-progress", help="Show generation progress.")
        ] = True,
    ) -> None:
        try:
            import lm_eval  # noqa: F401
        except ModuleNotFoundError:
            fail("longtasks eval needs lm-eval: pip install 'longtasks[lmeval]'")
        from longtasks.commands.generate import parse_knob_options
        from longtasks.lm_eval_tasks.guard import requested_tasks
        from longtasks.lm_eval_tasks.launch import TaskSettings, execute, parse_lm_eval_args, start
        from longtasks.registry import base_task

        try:
            parsed_lengths = tuple(parse_lengths(lengths)) if lengths else None
            start()
            cli, args = parse_lm_eval_args(ctx.args)
            knobs = {}
            if knob:
                requested = requested_tasks(getattr(args, "tasks", None) or [])
                knobs = parse_knob_options(knob, [t for t in requested if base_task(t) == t])
            settings = TaskSettings(
                lengths=parsed_lengths, num_samples=num_samples, seed=sample_seed, knobs=knobs,
                data_path=data_path, workers=workers, progress=progress,
            )  # fmt: skip
            execute(cli, args, settings)
        except ValueError as error:
            fail(str(error))
