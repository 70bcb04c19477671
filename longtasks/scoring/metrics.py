"""Exact, strict per-sample metrics for the four answer kinds.

Every result has "score" (the headline number in [0, 1]) and "parsed" (1.0 when an answer of the
right shape was found). An unparseable or empty answer scores 0 on every metric; it is never dropped.

- text: score = exact match of normalised strings.
- list: score = correct positions / max(len(gold), len(predicted)), so missing answers and extra
  trailing answers both cost; "exact" = every position right and nothing extra.
- set / int_set: score = IoU (Jaccard) of the normalised sets, so listing extra items costs;
  also "iou", "exact_set", "precision", "recall". Precision or recall with an empty denominator is
  0 (strict), except that an empty prediction for an empty gold set is a perfect answer.
- token_f1: the seed paper's SQuAD word F1, best over the acceptable answers (`token_f1.py`).
- choices: exact match of the set of option letters per question (`choices.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from longtasks.scoring import choices, token_f1
from longtasks.scoring.normalize import normalize_item, normalize_text
from longtasks.scoring.parse import (
    chapter_numbers,
    check_kind,
    extract_answer,
    is_empty_set_answer,
    is_placeholder_echo,
    positioned_items,
    split_items,
)

METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "text": ("score", "exact", "parsed"),
    "list": ("score", "exact", "parsed"),
    "set": ("score", "iou", "exact_set", "precision", "recall", "parsed"),
    "int_set": ("score", "iou", "exact_set", "precision", "recall", "parsed"),
    "token_f1": token_f1.METRIC_KEYS,
    "choices": choices.METRIC_KEYS,
}
"""The keys `score_prediction` returns for each kind (aggregation and zero rows use them)."""


def zero_metrics(answer_kind: str) -> dict[str, float]:
    """All metrics of a kind at 0: what an unparseable or missing prediction gets."""
    return dict.fromkeys(METRIC_KEYS[check_kind(answer_kind)], 0.0)


def decode_gold(answer_kind: str, answer: Any) -> Any:
    """The gold answer as an object of the right shape; `answer` may be the object or its JSON string.

    For "text", a string that is not JSON for a string is taken literally, so both ``"Red Lamp"`` and
    ``'"Red Lamp"'`` work. Other kinds need a list (or its JSON).
    """
    kind = check_kind(answer_kind)
    if isinstance(answer, str):
        try:
            decoded = json.loads(answer)
        except json.JSONDecodeError:
            decoded = answer if kind == "text" else None
        if kind == "text":
            return decoded if isinstance(decoded, str) else answer
        if not isinstance(decoded, list):
            raise ValueError(f"gold answer {answer!r} for kind {kind!r} is not a JSON list")
        answer = decoded
    if kind == "text":
        if isinstance(answer, (list, dict, tuple, set)) or answer is None:
            raise ValueError(f"gold answer {answer!r} for kind 'text' is not a string")
        return str(answer)
    if isinstance(answer, (str, bytes, dict)) or not isinstance(answer, Iterable):
        raise ValueError(f"gold answer {answer!r} for kind {kind!r} is not a list")
    items = list(answer)
    if kind == "token_f1":
        return token_f1.decode(items)
    if kind == "choices":
        return choices.decode(items)
    if kind == "int_set":
        return [_to_int(value) for value in items]
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"gold element {item!r} for kind {kind!r} is not a string")
    if kind == "list" and not items:
        raise ValueError("gold answer for kind 'list' is empty; it needs one element per question")
    return items


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"gold element {value!r} for kind 'int_set' is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise ValueError(f"gold element {value!r} for kind 'int_set' is not an integer")


def _set_metrics(predicted: set[Any], gold: set[Any]) -> dict[str, float]:
    if not predicted and not gold:
        return {"score": 1.0, "iou": 1.0, "exact_set": 1.0, "precision": 1.0, "recall": 1.0, "parsed": 1.0}
    common = len(predicted & gold)
    iou = common / len(predicted | gold)
    return {
        "score": iou,
        "iou": iou,
        "exact_set": float(predicted == gold),
        "precision": common / len(predicted) if predicted else 0.0,
        "recall": common / len(gold) if gold else 0.0,
        "parsed": 1.0,
    }


def _score_text(body: str, gold: str) -> dict[str, float]:
    predicted = normalize_text(body)
    if not predicted or is_placeholder_echo([predicted]):
        return zero_metrics("text")
    exact = float(predicted == normalize_text(gold))
    return {"score": exact, "exact": exact, "parsed": 1.0}


def _score_list(body: str, gold: list[str]) -> dict[str, float]:
    predicted = positioned_items(body)
    if not predicted or is_placeholder_echo(predicted.values()):
        return zero_metrics("list")
    expected = [normalize_item(item) for item in gold]
    correct = sum(item == expected[at] for at, item in predicted.items() if at < len(expected))
    exact = float(correct == len(expected) == len(predicted))
    return {"score": correct / max(len(expected), len(predicted)), "exact": exact, "parsed": 1.0}


def _score_set(body: str, gold: list[str]) -> dict[str, float]:
    if is_empty_set_answer(body):
        predicted: set[str] = set()
    else:
        items = split_items(body)
        if not items or is_placeholder_echo(items):
            return zero_metrics("set")
        predicted = set(items)
    return _set_metrics(predicted, {normalize_item(item) for item in gold})


def _score_int_set(body: str, gold: list[int]) -> dict[str, float]:
    if is_empty_set_answer(body):
        return _set_metrics(set(), set(gold))
    numbers, invalid = chapter_numbers(body)
    if not numbers:
        return zero_metrics("int_set")
    # Items that are no whole number ("1-13") are wrong answers: they widen the union, never the overlap.
    return _set_metrics({*numbers, *(f"invalid:{item}" for item in invalid)}, set(gold))


def list_position_scores(body: str | None, answer: Any) -> list[float]:
    """1.0/0.0 per question of a list answer (its own evidence depth makes it a depth probe of its own), with
    the positions `_score_list` uses; missing or unparseable answers count 0 at every position."""
    gold = decode_gold("list", answer)
    predicted = positioned_items(body) if body else {}
    expected = [normalize_item(item) for item in gold]
    return [float(predicted.get(i) == g) for i, g in enumerate(expected)]


def _score_token_f1(body: str, gold: list[list[str]]) -> dict[str, float]:
    return token_f1.score(body, gold, lambda lines: is_placeholder_echo(normalize_item(x) for x in lines))


_SCORERS = {
    "text": _score_text,
    "list": _score_list,
    "set": _score_set,
    "int_set": _score_int_set,
    "token_f1": _score_token_f1,
    "choices": choices.score,
}


def score_extracted(answer_kind: str, body: str | None, answer: Any) -> dict[str, float]:
    """Score an already extracted answer block (None = no block); see `score_prediction`."""
    kind = check_kind(answer_kind)
    gold = decode_gold(kind, answer)
    if body is None or not body.strip():
        return zero_metrics(kind)
    return _SCORERS[kind](body, gold)


def score_prediction(answer_kind: str, prediction: str, answer: Any) -> dict[str, float]:
    """Metrics of one model output against its gold answer (object or JSON string).

    Always returns "score" in [0, 1] and "parsed"; the other keys depend on the kind (METRIC_KEYS).
    Raises ValueError for an unknown kind or a malformed gold answer, TypeError for a non-string output.
    """
    check_kind(answer_kind)
    return score_extracted(answer_kind, extract_answer(prediction), answer)
