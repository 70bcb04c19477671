"""The word list of ruler_cwe: wonderwords' English nouns, adjectives and verbs (MIT licence), the lists
the seed paper used, reduced to single lowercase words without its profanity list, in a fixed order."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from longtasks.scoring.normalize import normalize_item

_LISTS = ("nounlist.txt", "adjectivelist.txt", "verblist.txt")
_GRAMMAR = {"and", "or", "none", "nothing", "empty"}
"""Words the answer grammar reads as separators or as the empty set."""


def _read(name: str) -> list[str]:
    return files("wonderwords.assets").joinpath(name).read_text(encoding="utf-8").splitlines()


@cache
def cwe_words() -> tuple[str, ...]:
    """Distinct words, sorted; each one reads back unchanged through the scorer's normalisation."""
    banned = {w.strip().lower() for w in _read("profanitylist.txt")}
    words = {w.strip() for name in _LISTS for w in _read(name)}
    kept = {w for w in words if w.isalpha() and w.isascii() and w.islower() and w not in banned | _GRAMMAR}
    return tuple(sorted(w for w in kept if normalize_item(w) == w))
