"""How every command reports a user's mistake: one line on stderr, exit code 2, never a traceback."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

USAGE_ERROR = 2

_console = Console(stderr=True, soft_wrap=True, highlight=False)


def fail(message: str) -> NoReturn:
    """Print `error: message` on one line and exit with code 2."""
    # escaped: a message quoting the user's input ("a/[/x]") must not be read as rich markup
    _console.print(f"[red]error:[/red] {escape(' '.join(str(message).split()))}")
    raise typer.Exit(USAGE_ERROR)
