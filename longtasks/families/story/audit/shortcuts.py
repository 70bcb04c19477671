"""Trivial baselines: answers a reader can give without understanding the story, from the prompt text.

They know only what names look like (items are three words from the item pools, people two capitalised
words, places "the <kind> of <Town>") and a few verbs; each returns the answer body it would write, which
the ordinary scorer scores. Some take a parameter k (the last k purchases, the k most named items);
`best_k` picks the best k on the rows themselves, an upper bound for such a reader.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import cache, partial
from typing import Any

from longtasks.families.story.audit.text import chapters_of, sentences_of
from longtasks.families.story.world.entities import ADJECTIVES, ITEM_MATERIALS, ITEM_NOUNS, LOCATION_KINDS
from longtasks.scoring.metrics import score_extracted

BUY = re.compile(r"\b(buy|buying|bought|purchase|purchased|acquire|acquired)\b", re.IGNORECASE)
_PERSON = re.compile(r"\b([A-Z][a-z]+(?:['-][A-Za-z]+)?) ([A-Z][a-z]+(?:['-][A-Za-z]+)?)\b")
_CHAPTER_QUESTION = re.compile(r"In chapter (\d+), (where was|whom did|which item did)")
Row = Mapping[str, Any]


@cache
def _item_pattern() -> re.Pattern[str]:
    words = lambda pool: "|".join(sorted(map(re.escape, pool), key=len, reverse=True))  # noqa: E731
    return re.compile(rf"\b(?:{words(ADJECTIVES)}) (?:{words(ITEM_MATERIALS)}) (?:{words(ITEM_NOUNS)})\b")


@cache
def _place_pattern() -> re.Pattern[str]:
    kinds = "|".join(sorted(map(re.escape, LOCATION_KINDS), key=len, reverse=True))
    return re.compile(rf"\bthe (?:{kinds}) of [A-Z][A-Za-z]*(?: [A-Z][A-Za-z]*)?")


def items_in(text: str) -> list[str]:
    return _item_pattern().findall(text)


def protagonist(row: Row) -> str:
    return re.search(r"It follows (.+?) from place to place", row["prompt"]).group(1)


@cache
def purchases(prompt: str) -> tuple[str, ...]:
    """Items named in sentences with a buying verb, in story order."""
    return tuple(
        item
        for text in chapters_of(prompt)
        for s in sentences_of(text)
        if BUY.search(s)
        for item in items_in(s)
    )


@cache
def named(prompt: str) -> Counter[str]:
    """How often each item is named in the story."""
    return Counter(items_in("\n".join(chapters_of(prompt))))


def _questions(row: Row) -> list[tuple[int, str]]:
    return [(int(n), kind) for n, kind in _CHAPTER_QUESTION.findall(row["question"])]


# --- readers: row -> answer body ---------------------------------------------------------------------


def retrieval_question_only(row: Row) -> str:
    """The protagonist's name for every question (all the question gives away)."""
    return "\n".join(protagonist(row) for _ in _questions(row))


def retrieval_first_name(row: Row) -> str:
    """For "chapter N": the first place, person (not the protagonist) or item named in chapter N."""
    chapters = chapters_of(row["prompt"])
    hero = protagonist(row)
    answers = []
    for number, kind in _questions(row):
        text = chapters[number - 1] if number <= len(chapters) else ""
        if kind == "where was":
            found = _place_pattern().findall(text)
        elif kind == "whom did":
            found = [
                f"{a} {b}" for a, b in _PERSON.findall(text) if f"{a} {b}" != hero and a not in hero.split()
            ]
        else:
            found = items_in(text)
        answers.append(found[0] if found else "")
    return "\n".join(answers)


def multihop_question_only(row: Row) -> str:
    """The item the question names."""
    return items_in(row["question"])[0]


def multihop_previous_item(row: Row) -> str:
    """The item named last before the question's item is first named."""
    story = "\n".join(chapters_of(row["prompt"]))
    asked = items_in(row["question"])[0]
    at = story.find(asked)
    before = items_in(story[:at]) if at > 0 else []
    return before[-1] if before else ""


def filtering_every_chapter(row: Row) -> str:
    return ", ".join(str(n) for n in range(1, len(chapters_of(row["prompt"])) + 1))


def filtering_no_item_named(row: Row) -> str:
    """Chapters in which no item is named at all."""
    chapters = chapters_of(row["prompt"])
    return ", ".join(str(n) for n, text in enumerate(chapters, start=1) if not items_in(text)) or "none"


def inventory_last_purchases(row: Row, k: int) -> str:
    return ", ".join(purchases(row["prompt"])[-k:]) or "none"


def inventory_most_named(row: Row, k: int) -> str:
    return ", ".join(item for item, _ in named(row["prompt"]).most_common(k)) or "none"


def inventory_named_once(row: Row) -> str:
    return ", ".join(item for item, n in named(row["prompt"]).items() if n == 1) or "none"


def inventory_question_only(row: Row) -> str:
    return "none"


READERS: dict[str, dict[str, Callable[[Row], str]]] = {
    "story_retrieval": {
        "question only": retrieval_question_only,
        "first name in the chapter": retrieval_first_name,
    },
    "story_multihop": {
        "question only": multihop_question_only,
        "item named just before": multihop_previous_item,
    },
    "story_filtering": {
        "every chapter": filtering_every_chapter,
        "chapters naming no item": filtering_no_item_named,
    },
    "story_inventory": {"question only": inventory_question_only, "items named once": inventory_named_once},
}
K_READERS: dict[str, dict[str, Callable[[Row, int], str]]] = {
    "story_inventory": {
        "last k purchases": inventory_last_purchases,
        "k most named items": inventory_most_named,
    },
}
K_GRID = (1, 2, 3, 5, 8, 10, 15, 20, 30, 50, 100, 200, 500, 1000)


def mean_score(rows: Sequence[Row], reader: Callable[[Row], str]) -> float:
    return sum(
        score_extracted(row["answer_kind"], reader(row), row["answer"])["score"] for row in rows
    ) / len(rows)


def best_k(rows: Sequence[Row], reader: Callable[[Row, int], str]) -> tuple[float, int]:
    """The best mean score over k in `K_GRID` (chosen on these rows: an upper bound), and that k."""
    return max((mean_score(rows, partial(_with_k, reader, k)), k) for k in K_GRID)


def _with_k(reader: Callable[[Row, int], str], k: int, row: Row) -> str:
    return reader(row, k)


def baselines(task: str, rows: Sequence[Row]) -> dict[str, float]:
    """Mean score of every trivial reader of `task` on `rows` (k-readers at their best k)."""
    out = {name: mean_score(rows, reader) for name, reader in READERS[task].items()}
    for name, reader in K_READERS.get(task, {}).items():
        score, k = best_k(rows, reader)
        out[f"{name} (best k={k})"] = score
    return out
