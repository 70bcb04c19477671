"""The `longtasks` command line: list, generate, show, score (+ eval, export, push, sweep, analyze, reference)."""

from __future__ import annotations

import typer

from longtasks.commands import analyze, generate, hub, reference, score, sweep
from longtasks.commands import eval as eval_command

app = typer.Typer(
    name="longtasks",
    help="Exact-length long-context tasks: generate, inspect, score, evaluate and publish.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
for module in (generate, score, eval_command, hub, sweep, analyze, reference):
    module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
