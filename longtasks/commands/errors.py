"""How every command reports a user's mistake: one line on stderr, exit code 2, never a traceback."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

USAGE_ERROR = 2

_console = Console(stderr=True, soft_wrap=True, highlight=False)


def fail(message: str) -> NoReturn:
    """Print `error: message` on one line and exit with code 2."""
    _console.print(f"[red]error:[/red] {' '.join(str(message).split())}")
    raise typer.Exit(USAGE_ERROR)
