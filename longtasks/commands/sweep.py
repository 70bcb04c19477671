"""`longtasks sweep`: run a model x method x compression x length grid through lm-eval, resumably."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from longtasks.commands.analyze import parse_phases
from longtasks.commands.errors import fail
from longtasks.commands.values import whole_number
from longtasks.paths import check_output_folder

console = Console(stderr=True)

HELP = """Run a grid of sparse-attention evaluations on the longtasks tasks, one lm-eval output folder per cell.

\b
Example (CPU, a tiny model):
  longtasks sweep --models ./tiny-model --methods vertical_slash,snapkv --compressions 2,4 \\
    --lengths 1k,2k --tasks story_multihop --num-samples 1 --gen-kwargs max_gen_toks=64 --device cpu --out sweep/
\b
Example (GPU):
  longtasks sweep --models Qwen/Qwen2.5-7B-Instruct,Qwen/Qwen2.5-14B-Instruct --methods vertical_slash,quest \\
    --compressions 2,5,10,20 --lengths 16k,32k,64k --tasks longtasks_all --chat --model-args dtype=bfloat16 --out sweep/

Each model runs densely at every length (the baseline) and under each method at each compression. Finished
cells are skipped, so rerunning the same command resumes a killed sweep (or extends it with new models,
methods, compressions or lengths). The per-sample table is written to OUT/results.parquet; then run
`longtasks analyze OUT/results.parquet --out analysis/`.
"""


def split_list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def key_values(text: str | None, option: str) -> dict[str, str]:
    pairs = {}
    for part in split_list(text):
        if "=" not in part:
            raise ValueError(f"{option} takes KEY=VALUE pairs separated by commas, got {part!r}")
        key, value = part.split("=", 1)
        pairs[key.strip()] = value.strip()
    return pairs


def method_args(items: list[str] | None) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in items or []:
        name, _, value = item.partition("=")
        method, dot, field = name.partition(".")
        if not dot or not field or not value:
            raise ValueError(
                f"--method-arg takes METHOD.FIELD=VALUE (e.g. flexprefill.min_budget=64), got {item!r}"
            )
        out.setdefault(method, {})[field] = value
    return out


def compressions_list(text: str | None) -> list[float]:
    values = []
    for part in split_list(text):
        try:
            values.append(float(part.rstrip("x")))
        except ValueError:
            raise ValueError(f"--compressions takes numbers like 2,5,10, got {part!r}") from None
    return values


def register(app: typer.Typer) -> None:
    @app.command("sweep", help=HELP)
    def sweep_command(
        models: Annotated[str, typer.Option(help="Hub ids or local folders, comma-separated.")],
        lengths: Annotated[str, typer.Option(help="Prompt lengths: 1k,2k or 16384,32768.")],
        out: Annotated[Path, typer.Option(help="Sweep folder (created; reused to resume).")],
        methods: Annotated[
            str, typer.Option(help="Sparse methods, comma-separated (sparse_eval names).")
        ] = "",
        compressions: Annotated[str, typer.Option(help="Compression ratios > 1, comma-separated.")] = "",
        tasks: Annotated[
            str, typer.Option(help="longtasks tasks or groups, comma-separated.")
        ] = "longtasks_all",
        num_samples: Annotated[
            int, typer.Option("--num-samples", parser=whole_number(1), help="Samples per task and length.")
        ] = 100,
        sample_seed: Annotated[
            int, typer.Option("--sample-seed", parser=whole_number(0), help="Seed of the generated samples.")
        ] = 0,
        chat: Annotated[
            bool, typer.Option("--chat/--no-chat", help="Apply the chat template (instruct models).")
        ] = False,
        model_args: Annotated[
            str | None, typer.Option("--model-args", help="Extra model args: dtype=bfloat16,...")
        ] = None,
        method_arg: Annotated[
            list[str] | None,
            typer.Option("--method-arg", help="METHOD.FIELD=VALUE for one method (repeatable)."),
        ] = None,
        gen_kwargs: Annotated[
            str | None, typer.Option("--gen-kwargs", help="lm-eval gen_kwargs: max_gen_toks=256.")
        ] = None,
        device: Annotated[
            str | None, typer.Option(help="cpu, cuda, cuda:0 ... (default: lm-eval's choice).")
        ] = None,
        model_type: Annotated[str, typer.Option("--model-type", help="lm-eval model type.")] = "sparse-hf",
        keep_going: Annotated[
            bool, typer.Option(help="Record a failing cell and go on instead of stopping.")
        ] = False,
        phase: Annotated[
            list[str] | None,
            typer.Option(help="METHOD=prefill|decode for a method the analysis does not know."),
        ] = None,
    ) -> None:
        from longtasks.lengths import parse_lengths

        world_size = os.environ.get("WORLD_SIZE", "1")
        if world_size.isdigit() and int(world_size) > 1:
            fail(
                f"longtasks sweep runs in one process (WORLD_SIZE={world_size}): under accelerate launch every "
                "process would write the same sweep folder; run one sweep per GPU on different models "
                "(CUDA_VISIBLE_DEVICES=1 longtasks sweep --models B ... --out sweep-b/) and analyse the tables together"
            )
        try:
            check_output_folder(out)
            phases = parse_phases(phase)
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            from longtasks.analysis.sweep import SweepSpec, run_sweep
            from longtasks.analysis.sweep.grid import cells

            spec = SweepSpec(
                models=tuple(split_list(models)), methods=tuple(split_list(methods)),
                compressions=tuple(compressions_list(compressions)), lengths=tuple(parse_lengths(lengths)),
                tasks=tuple(split_list(tasks)), num_samples=num_samples, seed=sample_seed, chat=chat,
                gen_kwargs=gen_kwargs, device=device, model_type=model_type,
                model_args=key_values(model_args, "--model-args"), method_args=method_args(method_arg),
            )  # fmt: skip
            with Progress(
                TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.description}"), console=console,
            ) as progress:  # fmt: skip
                bar = progress.add_task("", total=len(cells(spec)))

                def on_cell(cell, state: str) -> None:
                    if state == "start":  # the label holds the model's name: shown as written, not as markup
                        progress.update(bar, description=escape(cell.label()))
                        return
                    progress.advance(bar)
                    if state == "fail":
                        console.print(f"[red]failed:[/red] {escape(cell.label())}")

                result = run_sweep(spec, out, keep_going=keep_going, on_cell=on_cell, phases=phases)
        except (ImportError, ValueError) as error:
            fail(str(error))
        except OSError as error:  # the sweep folder could not be written after all (a full disk, permissions)
            fail(
                f"sweep stopped: {error}; finished cells are kept: fix the cause and run the same command again"
            )
        except KeyboardInterrupt:
            console.print(
                "[yellow]interrupted:[/yellow] finished cells are kept; run the same command to resume"
            )
            raise typer.Exit(130) from None
        console.print(
            f"{len(result.done)} cell(s) run, {len(result.skipped)} already done, {len(result.failed)} failed; "
            f"table: {result.table}",
            markup=False,
        )
        if result.failed:
            raise typer.Exit(1)
