"""Text normalisation shared by gold answers and predictions.

Both sides go through the same function, so normalisation can only forgive formatting (case, spacing,
quotes, articles, unicode width), never content: two different entity names stay different.
"""

from __future__ import annotations

import re
import unicodedata

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_ENUMERATOR = re.compile(r"^(?:\d+[.)]|and)\s+")
# Unicode categories stripped from the ends of an answer: punctuation (quotes, brackets, dashes, full
# stops, markdown `*`) and modifier/math symbols (backticks, `^`, `~`, `+`, `<`, `>`, `|`).
_EDGE_CATEGORIES = ("P", "Sk", "Sm")


def _is_edge_char(char: str) -> bool:
    if char.isspace():
        return True
    category = unicodedata.category(char)
    return any(category.startswith(prefix) for prefix in _EDGE_CATEGORIES)


def _strip_edges(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _is_edge_char(text[start]):
        start += 1
    while end > start and _is_edge_char(text[end - 1]):
        end -= 1
    return text[start:end]


def normalize_text(text: str) -> str:
    """Canonical form of one answer: NFKC, case-folded, articles removed, whitespace collapsed, and
    punctuation/quotes stripped from both ends (``'"The Red Lamp."'`` -> ``"red lamp"``).

    Articles (a, an, the) are removed as whole words anywhere, as SQuAD-style scorers do, because
    models add or drop them freely ("the Red Lamp" vs "Red Lamp").
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize_text expects a string, got {type(text).__name__}: {text!r}")
    folded = unicodedata.normalize("NFKC", text).casefold()
    without_articles = _ARTICLES.sub(" ", folded)
    return _strip_edges(" ".join(without_articles.split()))


def normalize_item(text: str) -> str:
    """Canonical form of one element of a list/set answer: `normalize_text`, then a leading list
    marker ("1.", "2)") or the word "and" (from "A, B, and C") is dropped.

    Bullets ("-", "*", "•") are already punctuation and go with `normalize_text`. Gold items get the
    same treatment, so an entity name that itself started with "and " would still match itself.
    """
    normalized = normalize_text(text)
    stripped = _ENUMERATOR.sub("", normalized, count=1)
    return normalize_text(stripped) if stripped != normalized else normalized
