"""Confusers: people, places and items of the story named in chapters where they answer no question.

Without them the fact sentences are the only ones with names, so a reader could find every answer by
looking for capitals. A mention never changes the truth: a person is only talked about (met in another
chapter), a place is only seen or talked about (visited in another chapter), an item is one the
protagonist owns for the whole chapter (bought earlier, not sold in it). The wording is in
`templates/story/mention_*.j2`; which names are mentioned, and where, is decided here.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import NamedTuple

from longtasks.families.story.world.simulator import Chapter, World

KINDS = ("person", "place", "item", "item", "item")
"""Kinds drawn for a mention: items three times as often (three of the four tasks answer with items)."""
_NO_ITEM = tuple(k for k in KINDS if k != "item")
_ITEM_CANDIDATES = 4  # owned items looked at per item mention; the least mentioned one is named


class Mention(NamedTuple):
    """A name of the story said in a chapter where it answers no question."""

    kind: str  # "person" | "place" | "item"
    value: str


def choose_mentions(world: World, rate: float, rng: random.Random) -> list[tuple[Mention, ...]]:
    """Mentions per chapter: on average `rate` a chapter, kinds at random among those possible.

    Items are picked among the ones owned, preferring the least mentioned so far, so that how often an
    item is named says little about whether it is still owned at the end; a chapter that buys nothing
    names at least one (when anything is owned), so that naming no item never marks such a chapter.
    """
    chapters = world.chapters
    if len(chapters) < 2 or rate <= 0:
        return [() for _ in chapters]
    owned: list[str] = []
    slot: dict[str, int] = {}
    said: dict[str, int] = {}  # item -> times named so far (purchase, sale, mentions)
    out: list[tuple[Mention, ...]] = []
    whole, fraction = int(rate), rate - int(rate)
    random = rng.random
    for chapter in chapters:
        for item in chapter.sales:
            _discard(owned, slot, item)
        count = whole + (random() < fraction)
        if not chapter.purchases and owned and not count:
            count = 1
        mentions: list[Mention] = []
        taken = {chapter.location, chapter.character}
        for k in range(count):
            if k == 0 and not chapter.purchases and owned:
                kind = "item"
            else:
                kinds = KINDS if len(owned) > len(mentions) else _NO_ITEM
                kind = kinds[int(random() * len(kinds))]
            mention = _one(chapters, kind, owned, said, taken, random)
            if mention is not None:
                taken.add(mention.value)
                mentions.append(mention)
        out.append(tuple(mentions))
        for item in chapter.purchases:
            said[item] = said.get(item, 0) + 1
            slot[item] = len(owned)
            owned.append(item)
        for item in chapter.sales:
            said[item] = said.get(item, 0) + 1
    return out


def _one(
    chapters: tuple[Chapter, ...],
    kind: str,
    owned: list[str],
    said: dict[str, int],
    taken: set[str],
    random: Callable[[], float],
) -> Mention | None:
    for _ in range(8):  # a few tries to find a value not already named in this chapter
        if kind == "item":
            value, fewest = "", 1 << 30
            for _ in range(_ITEM_CANDIDATES):
                candidate = owned[int(random() * len(owned))]
                times = said.get(candidate, 0)
                if times < fewest:
                    value, fewest = candidate, times
        else:
            other = chapters[int(random() * len(chapters))]
            value = other.character if kind == "person" else other.location
        if value not in taken:
            if kind == "item":
                said[value] = fewest + 1
            return Mention(kind, value)
    return None


def _discard(owned: list[str], slot: dict[str, int], item: str) -> None:
    """Remove `item` from `owned` in O(1) (the last item takes its place)."""
    at = slot.pop(item)
    last = owned.pop()
    if last != item:
        owned[at] = last
        slot[last] = at
