"""Read the answer out of a model's output, and write gold answers in the same format.

The answer is the content of the LAST ``<answer>...</answer>`` block once all reasoning is removed
(tags are case-insensitive and may contain spaces, e.g. ``< Answer >``). Reasoning rules:

- every closed ``<think>...</think>`` block is removed, including any fake ``<answer>`` inside it;
- a ``</think>`` left without its opening tag means the chat template opened the reasoning (Qwen3,
  DeepSeek-R1 put ``<think>`` in the prompt), so everything before it is reasoning and is dropped;
- an unclosed ``<think>`` means the model was cut off while reasoning: everything after it is
  reasoning and is dropped, so an answer block written *before* it still counts (the model answered,
  then started second-guessing). An output that is only unfinished reasoning has no answer.

A last ``<answer>`` with no closing tag runs to the end of the text (a stop sequence may cut
``</answer>``). No block means unparseable: the scorer gives 0, never drops the sample.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any, get_args

from longtasks.sample import AnswerKind
from longtasks.scoring import choices, token_f1
from longtasks.scoring.normalize import normalize_item, normalize_text

ANSWER_KINDS: tuple[str, ...] = get_args(AnswerKind)
EMPTY_SET_WORDS = frozenset({"none", "nothing", "empty", "no items"})
"""Whole answers that mean "the empty set" for set kinds; `format_answer` writes "none"."""

_FLAGS = re.IGNORECASE | re.DOTALL
_THINK_BLOCK = re.compile(r"<\s*think\s*>.*?<\s*/\s*think\s*>", _FLAGS)
_THINK_OPEN = re.compile(r"<\s*think\s*>", _FLAGS)
_THINK_CLOSE = re.compile(r"<\s*/\s*think\s*>", _FLAGS)
_ANSWER_OPEN = re.compile(r"<\s*answer\s*>", _FLAGS)
_ANSWER_CLOSE = re.compile(r"<\s*/\s*answer\s*>", _FLAGS)
_TAG = re.compile(r"<\s*/?\s*(?:answer|think)\s*>", _FLAGS)
_SEPARATORS = re.compile(r"[\r\n;,]|\s(?:and|&)\s", re.IGNORECASE)
"""One list grammar for every list and set answer: items separated by newlines, commas, semicolons or a
word "and" / "&" ("a, b and c"; "3, 11 and 13")."""
_INTEGER = re.compile(r"\d+")
_NUMBERED = re.compile(r"^(\d+)[.)]\s")
_CHAPTER_NUMBER = re.compile(r"^(?:chapters?|ch)?\s*(\d+)$")

ANSWER_PLACEHOLDERS = frozenset(
    {
        "answer to question 1", "answer to question 2", "answer to question 3", "...", "…",
        "value of key 1", "value of key 2", "value of key 3",
        "name of item", "first item", "second item", "first chapter number", "second chapter number",
        "first variable", "second variable", "first word", "second word",
        # examples of earlier versions' prompts (their data may still be scored)
        "answer 1", "answer 2", "answer 3", "value 1", "value 2", "value 3", "item name",
        "variable_one", "variable_two",
        "short answer copied from document",
    }
)  # fmt: skip
"""Items of the answer-format examples in the prompts: a model that echoes only these did not answer."""


def check_kind(answer_kind: str) -> str:
    """Return `answer_kind` if it is known, else raise naming it and the valid kinds."""
    if answer_kind not in ANSWER_KINDS:
        raise ValueError(f"unknown answer_kind {answer_kind!r}: valid kinds are {', '.join(ANSWER_KINDS)}")
    return answer_kind


def strip_thinking(text: str) -> str:
    """Remove reasoning from a model output following the rules in the module docstring."""
    text = _THINK_BLOCK.sub(" ", text)
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        text = text[closes[-1].end() :]
    unclosed = _THINK_OPEN.search(text)
    if unclosed:
        text = text[: unclosed.start()]
    return text


def extract_answer(prediction: str) -> str | None:
    """Content of the last answer block (whitespace-stripped), or None when there is none."""
    if not isinstance(prediction, str):
        raise TypeError(
            f"a prediction must be a string (use '' for no output), got {type(prediction).__name__}"
        )
    text = strip_thinking(prediction)
    opens = list(_ANSWER_OPEN.finditer(text))
    if not opens:
        return None
    start = opens[-1].end()
    close = _ANSWER_CLOSE.search(text, start)
    return text[start : close.start() if close else len(text)].strip()


def split_items(body: str) -> list[str]:
    """Normalised elements of a list/set answer, split on newlines, ';' and ','; empty ones dropped.

    Entity names never contain these separators (a generator invariant `format_answer` checks).
    """
    parts = _SEPARATORS.split(unicodedata.normalize("NFKC", body))
    items = (normalize_item(part) for part in parts)
    return [item for item in items if item]


def positioned_items(body: str) -> dict[int, str]:
    """The elements of an ordered-list answer by the position (0-based) the answer gives them.

    When every element carries its own distinct number ("1. x", "3) y"), element n is at position n - 1 and a
    skipped number leaves that position empty: a model that leaves out or reorders numbered answers is
    scored on the ones it gave, as the paper's (position, key, value) matching does. Otherwise the elements
    keep the order they were written in.
    """
    parts = [normalize_text(part) for part in _SEPARATORS.split(unicodedata.normalize("NFKC", body))]
    parts = [part for part in parts if part]
    numbers = [int(match.group(1)) for match in map(_NUMBERED.match, parts) if match]
    if parts and len(numbers) == len(parts) == len(set(numbers)) and min(numbers) >= 1:
        return {number - 1: normalize_item(part) for number, part in zip(numbers, parts, strict=True)}
    return dict(enumerate(split_items(body)))


def is_placeholder_echo(items: Iterable[str]) -> bool:
    """True when every (normalised) item is one of the prompt's example placeholders."""
    items = list(items)
    return bool(items) and all(item in ANSWER_PLACEHOLDERS for item in items)


def chapter_numbers(body: str) -> tuple[list[int], list[str]]:
    """The items of an integer-set answer read with the one list grammar: whole numbers (optionally
    "chapter 7"), and the items that are not one ("1-13", "three"), which count as wrong answers."""
    numbers: list[int] = []
    invalid: list[str] = []
    for item in split_items(body):
        match = _CHAPTER_NUMBER.match(item)
        if match:
            numbers.append(int(match.group(1)))
        else:
            invalid.append(item)
    return numbers, invalid


def is_empty_set_answer(body: str) -> bool:
    return normalize_text(body) in EMPTY_SET_WORDS


def _check_no_tags(kind: str, value: str) -> None:
    if _TAG.search(value):
        raise ValueError(
            f"{kind} answer {value!r} contains an <answer>/<think> tag; it could not be parsed back"
        )


def _format_text(answer: Any) -> str:
    if not isinstance(answer, str):
        raise ValueError(f"a 'text' answer must be a string, got {type(answer).__name__}: {answer!r}")
    _check_no_tags("text", answer)
    if not normalize_text(answer):
        raise ValueError(f"'text' answer {answer!r} is empty after normalisation (only punctuation/articles)")
    return answer.strip()


def _format_strings(kind: str, answer: Any) -> str:
    if isinstance(answer, (str, bytes)) or not isinstance(answer, Iterable):
        raise ValueError(
            f"a {kind!r} answer must be a list of strings, got {type(answer).__name__}: {answer!r}"
        )
    items = sorted(answer) if isinstance(answer, (set, frozenset)) else list(answer)
    if kind == "list" and not items:
        raise ValueError("a 'list' answer must have at least one element (one per question)")
    if kind == "set" and not items:
        return "none"
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{kind!r} answer element {item!r} is not a string")
        _check_no_tags(kind, item)
        if _SEPARATORS.search(item):
            raise ValueError(
                f"{kind!r} answer element {item!r} contains a separator (newline, ';', ',' or a word 'and'); "
                "entity names must not, or the answer cannot be split back"
            )
        if normalize_item(item) in ANSWER_PLACEHOLDERS:
            raise ValueError(f"{kind!r} answer element {item!r} reads as an answer-format placeholder")
        if not normalize_item(item):
            raise ValueError(f"{kind!r} answer element {item!r} is empty after normalisation")
    if kind == "set" and len(items) == 1 and normalize_text(items[0]) in EMPTY_SET_WORDS:
        raise ValueError(f"'set' answer element {items[0]!r} would be read as the empty set")
    return ", ".join(item.strip() for item in items)


def _format_ints(answer: Any) -> str:
    if isinstance(answer, (str, bytes)) or not isinstance(answer, Iterable):
        raise ValueError(f"an 'int_set' answer must be a list of integers, got {answer!r}")
    values = list(answer)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"'int_set' answer element {value!r} is not a non-negative integer")
    return ", ".join(str(value) for value in sorted(set(values))) if values else "none"


def _format_checked(kind: str, body: str) -> str:
    _check_no_tags(kind, body)
    if is_placeholder_echo(normalize_item(line) for line in body.splitlines()):
        raise ValueError(f"{kind!r} answer {body!r} reads as an answer-format placeholder")
    return body


def format_answer(answer_kind: str, answer: Any, *, tags: bool = True) -> str:
    """The canonical way to write a gold answer so that it scores 1.0.

    Returns ``<answer>...</answer>`` (or only the inside with ``tags=False``): text as is; list and set
    elements joined by ", "; integers sorted and joined by ", "; an empty set as "none"; token-F1 and
    option-letter answers one line per question (the first acceptable answer; the letters). Raises
    ValueError when the answer could not be read back unchanged (a separator inside an entity name, an
    element that normalises to nothing, a negative chapter number, an empty list) — a generator bug.
    """
    kind = check_kind(answer_kind)
    if kind == "text":
        body = _format_text(answer)
    elif kind == "token_f1":
        body = _format_checked(kind, token_f1.format_gold(answer))
    elif kind == "choices":
        body = choices.format_gold(answer)
    elif kind == "int_set":
        body = _format_ints(answer)
    else:
        body = _format_strings(kind, answer)
    return f"<answer>{body}</answer>" if tags else body
