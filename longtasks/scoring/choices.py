"""Answer kind `choices`: multiple-choice answers (QuALITY, TOEFL-QA) scored by exact match of the
set of option letters, as the seed paper does; some questions have several correct options ("BD").

The gold answer has one string of letters per question. An answer is read strictly: letters written
alone ("B"), together ("BD"), or separated by commas, spaces, "/", "&" or "and" ("B, D", "B and D"), each
optionally in brackets or followed by "." or ":" ("(B)", "B."); an optional leading "Answer:" or "Options:"
and list marker ("1.") are dropped. Anything else (a sentence, the option's text) is unparsed and scores 0
(the paper's scorer kept every A-D letter of the text, so "Answer: B" read as "AB"). With several questions,
one line per question in order; a sample scores right lines over max(questions, lines).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

METRIC_KEYS = ("score", "exact", "parsed")
_TOKEN = re.compile(r"^[(\[]?([A-Z]+|[a-z])[)\]]?[.:]?$")
_SPLIT = re.compile(r"[\s,;/&]+")
_PREFIX = re.compile(r"^(?:\d+[.)]\s*)?(?:(?:options?|answers?|letters?)\s*:?\s+)?", re.IGNORECASE)
_JOINERS = frozenset({"and"})


def letter_set(text: str) -> frozenset[str] | None:
    """The option letters one answer names, or None when it is not only letters."""
    text = _PREFIX.sub("", unicodedata.normalize("NFKC", text).strip(), count=1)
    letters: set[str] = set()
    for part in _SPLIT.split(text):
        if not part or part.lower() in _JOINERS:
            continue
        match = _TOKEN.match(part)
        if match is None:
            return None
        letters.update(match.group(1).upper())
    return frozenset(letters) or None


def answer_sets(body: str, questions: int) -> list[frozenset[str] | None]:
    """One letter set (None: unreadable) per answer: the whole block for one question, else per line."""
    if questions == 1:
        return [letter_set(body)] if body.strip() else []
    return [letter_set(line) for line in body.splitlines() if line.strip()]


def decode(items: list[Any]) -> list[str]:
    """The gold answer as one sorted letter string per question; ValueError if malformed."""
    if not isinstance(items, list) or not items:
        raise ValueError("gold answer for kind 'choices' is empty; it needs letters per question")
    for item in items:
        if (
            not isinstance(item, str)
            or not item
            or not item.isascii()
            or not item.isupper()
            or not item.isalpha()
        ):
            raise ValueError(f"gold element {item!r} for kind 'choices' is not a string of capital letters")
    return ["".join(sorted(set(item))) for item in items]


def score(body: str, gold: list[str]) -> dict[str, float]:
    sets = answer_sets(body, len(gold))
    if not any(s is not None for s in sets):
        return dict.fromkeys(METRIC_KEYS, 0.0)
    right = sum(s == frozenset(g) for s, g in zip(sets, gold, strict=False))
    exact = float(right == len(gold) == len(sets))
    return {"score": right / max(len(sets), len(gold)), "exact": exact, "parsed": 1.0}


def format_gold(answer: Any) -> str:
    """One line of letters per question ("BD")."""
    return "\n".join(decode(list(answer) if isinstance(answer, tuple) else answer))
