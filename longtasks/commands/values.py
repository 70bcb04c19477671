"""Parsers for numeric options: typer's own messages ("Input should be a valid integer") do not quote the
value given; these do, and say what would work."""

from __future__ import annotations

from collections.abc import Callable

import typer


def whole_number(minimum: int | None = None) -> Callable[[str], int]:
    """A parser of whole numbers (at least `minimum`) whose errors quote the value given."""

    def parse(text: str | int) -> int:
        if isinstance(text, int):  # a default passes through unparsed
            return text
        try:
            value = int(str(text).strip())
        except ValueError:
            example = max(minimum or 0, 1)
            raise typer.BadParameter(f"{text!r} is not a whole number; give one, e.g. {example}") from None
        if minimum is not None and value < minimum:
            raise typer.BadParameter(f"{value} is below {minimum}; give a whole number >= {minimum}")
        return value

    return parse
