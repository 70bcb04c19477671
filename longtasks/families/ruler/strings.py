"""Random identifiers that never repeat within a sample: key-value strings and variable names."""

from __future__ import annotations

import random
import string

KEY_ALPHABET = string.ascii_lowercase + string.digits


def draw_kv_string(rng: random.Random) -> str:
    """Four groups of eight characters from [a-z0-9] joined by "-" (the seed's key/value format)."""
    chars = rng.choices(KEY_ALPHABET, k=32)
    return "-".join("".join(chars[i : i + 8]) for i in range(0, 32, 8))


def draw_unique(draw, rng: random.Random, used: set[str]) -> str:
    """A fresh string from `draw(rng)` that is not in `used` (and record it there)."""
    while True:
        value = draw(rng)
        if value not in used:
            used.add(value)
            return value


def draw_variable(rng: random.Random) -> str:
    """Five uppercase letters."""
    return "".join(rng.choices(string.ascii_uppercase, k=5))
