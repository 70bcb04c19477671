"""Answer kind `token_f1`: short extractive answers (SQuAD) scored by word-overlap F1, as the seed paper does.

Normalisation is the paper's, extended to Unicode: NFKC, lower-case, punctuation removed (ASCII punctuation
and every Unicode punctuation character, without leaving a space: "Saint-Denis" -> "saintdenis"), the words
a, an, the, and, or, about, to removed, whitespace collapsed. F1 compares the *sets* of remaining words (the
paper's choice), is rounded to two decimals, and the best gold alternative counts.

The gold answer has one entry per question, each a non-empty list of acceptable answers. With one question
the whole answer block is the answer; with several, one answer per line in question order (a leading "1."
or bullet is dropped). A sample scores the sum of its questions' F1 over max(questions, answer lines), so
extra lines cost; `exact` means every answer equals a gold alternative after normalisation.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable
from typing import Any

METRIC_KEYS = ("score", "exact", "parsed")
_DROPPED_WORDS = re.compile(r"\b(?:a|an|the|and|or|about|to)\b")
_ENUMERATOR = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+")
_ASCII_PUNCTUATION = frozenset(string.punctuation)


def _is_punctuation(char: str) -> bool:
    return char in _ASCII_PUNCTUATION or unicodedata.category(char).startswith("P")


def normalize_f1(text: str) -> str:
    """The paper's SQuAD normalisation (see the module docstring)."""
    folded = unicodedata.normalize("NFKC", text).lower()
    kept = "".join(char for char in folded if not _is_punctuation(char))
    return " ".join(_DROPPED_WORDS.sub(" ", kept).split())


def f1(prediction: str, gold: str) -> float:
    """Set-based word F1 of two answers, rounded to two decimals (0 when either is empty)."""
    predicted, expected = set(normalize_f1(prediction).split()), set(normalize_f1(gold).split())
    common = len(predicted & expected)
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return round(2 * precision * recall / (precision + recall), 2)


def answer_lines(body: str, questions: int) -> list[str]:
    """The answers in an answer block: the whole block for one question, else its non-empty lines."""
    if questions == 1:
        return [" ".join(body.split())] if body.strip() else []
    lines = (_ENUMERATOR.sub("", line, count=1).strip() for line in body.splitlines())
    return [line for line in lines if line]


def check_item(text: str) -> str | None:
    """Why `text` cannot be written as a gold answer line (None when it can)."""
    if not isinstance(text, str):
        return f"{text!r} is not a string"
    if "\n" in text or "\r" in text:
        return f"{text!r} spans several lines"
    if not normalize_f1(text):
        return f"{text!r} is empty after normalisation (only punctuation or dropped words)"
    if _ENUMERATOR.match(text):
        return f"{text!r} starts like a list marker and would lose it"
    return None


def decode(items: list[Any]) -> list[list[str]]:
    """The gold answer as lists of alternatives, one list per question; ValueError if malformed."""
    if not isinstance(items, list) or not items:
        raise ValueError(
            "gold answer for kind 'token_f1' is empty; it needs one list of answers per question"
        )
    for alternatives in items:
        if isinstance(alternatives, (str, bytes, dict)) or not isinstance(alternatives, Iterable):
            raise ValueError(
                f"gold element {alternatives!r} for kind 'token_f1' is not a list of acceptable answers"
            )
        if not alternatives or not all(isinstance(a, str) for a in alternatives):
            raise ValueError(
                f"gold element {alternatives!r} for kind 'token_f1' needs at least one answer string"
            )
    return [list(alternatives) for alternatives in items]


def score(body: str, gold: list[list[str]], is_placeholder: Any) -> dict[str, float]:
    """Metrics of one answer block; `is_placeholder` tells an echo of the prompt's example."""
    lines = answer_lines(body, len(gold))
    if not lines or is_placeholder(lines):
        return dict.fromkeys(METRIC_KEYS, 0.0)
    total = 0.0
    exact = len(lines) == len(gold)
    for line, alternatives in zip(lines, gold, strict=False):
        total += max(f1(line, answer) for answer in alternatives)
        exact = exact and any(normalize_f1(line) == normalize_f1(answer) for answer in alternatives)
    return {"score": total / max(len(lines), len(gold)), "exact": float(exact), "parsed": 1.0}


def format_gold(answer: Any) -> str:
    """One line per question: its first acceptable answer (ValueError if it could not be read back)."""
    items = decode(list(answer) if isinstance(answer, tuple) else answer)
    lines = []
    for alternatives in items:
        problem = check_item(alternatives[0])
        if problem:
            raise ValueError(f"'token_f1' gold answer {problem}")
        lines.append(alternatives[0].strip())
    return "\n".join(lines)
