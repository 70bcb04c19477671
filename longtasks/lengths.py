"""Parse and format token lengths such as ``4k``, ``32K``, ``1M`` or ``131072``."""

from __future__ import annotations

import re

_LENGTH_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")
_MULTIPLIER = {"": 1, "k": 1024, "m": 1024 * 1024}


def parse_length(text: str | int) -> int:
    """Return the number of tokens a length spec means; ``k`` = 1024, ``M`` = 1024**2.

    Powers of two follow the convention of RULER and the seed paper (``4k`` = 4096 tokens).
    """
    if isinstance(text, int):
        value = text
    else:
        match = _LENGTH_RE.match(text)
        if not match:
            raise ValueError(
                f"invalid length {text!r}: use a whole number of tokens or a k/M suffix, e.g. 4096, 4k, 32k, 1M"
            )
        number, suffix = match.groups()
        scaled = float(number) * _MULTIPLIER[suffix.lower()]
        if scaled != int(scaled):
            raise ValueError(f"invalid length {text!r}: it is not a whole number of tokens ({scaled})")
        value = int(scaled)
    if value <= 0:
        raise ValueError(f"invalid length {text!r}: lengths must be positive")
    return value


def parse_lengths(text: str) -> list[int]:
    """Parse a comma-separated list of lengths (``"4k,32k"``), keeping order and dropping duplicates."""
    parts = [part for part in text.split(",") if part.strip()]
    if not parts:
        raise ValueError(f"invalid lengths {text!r}: give at least one length, e.g. 4k,32k")
    lengths = [parse_length(part) for part in parts]
    return list(dict.fromkeys(lengths))


def format_length(tokens: int) -> str:
    """Short name for a length used in config names: 4096 -> ``4k``, 1048576 -> ``1M``, 5000 -> ``5000``."""
    if tokens % (1024 * 1024) == 0:
        return f"{tokens // (1024 * 1024)}M"
    if tokens % 1024 == 0:
        return f"{tokens // 1024}k"
    return str(tokens)
