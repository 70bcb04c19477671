"""Confusers: people, places and items of the story named in chapters where they answer no question.

Without them the fact sentences are the only ones with names, so a reader could find every answer by
looking for capitals. A mention never changes the truth: a person is only talked about (met in another
chapter), a place is only seen or talked about (visited in another chapter), an item is one the
protagonist owns for the whole chapter (bought earlier, not sold in it). The wording is in
`templates/story/mention_*.j2`; which names are mentioned, and where, is decided here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from longtasks.families.story.world.simulator import World

KINDS = ("person", "place", "item", "item")
"""Kinds drawn for a mention: items twice as often (three of the four tasks answer with items)."""
_NO_ITEM = tuple(k for k in KINDS if k != "item")
_ITEM_CANDIDATES = 4  # owned items looked at per item mention; the least mentioned one is named


@dataclass(frozen=True)
class Mention:
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
    n = len(chapters)
    owned: list[str] = []
    slot: dict[str, int] = {}
    said: dict[str, int] = {}  # item -> times named so far (purchase, sale, mentions)
    out: list[tuple[Mention, ...]] = []
    whole, fraction = int(rate), rate - int(rate)
    for index, chapter in enumerate(chapters):
        for item in chapter.sales:
            _discard(owned, slot, item)
        count = whole + (1 if rng.random() < fraction else 0)
        mentions: list[Mention] = []
        taken = {chapter.location, chapter.character}
        must = "item" if rate > 0 and not chapter.purchases and owned else None
        for _ in range(max(count, 1 if must else 0)):
            kinds = KINDS if len(owned) > len(mentions) else _NO_ITEM
            kind = must or kinds[int(rng.random() * len(kinds))]
            must = None
            mention = _one(world, kind, index, owned, said, taken, rng)
            if mention is not None and n > 1:
                taken.add(mention.value)
                mentions.append(mention)
        out.append(tuple(mentions))
        for item in (*chapter.purchases, *chapter.sales):
            said[item] = said.get(item, 0) + 1
        for item in chapter.purchases:
            slot[item] = len(owned)
            owned.append(item)
    return out


def _one(
    world: World, kind: str, index: int, owned: list[str], said: dict[str, int], taken: set[str],
    rng: random.Random,
) -> Mention | None:  # fmt: skip
    chapters, random = world.chapters, rng.random
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
                said[value] = said.get(value, 0) + 1
            return Mention(kind, value)
    return None


def _discard(owned: list[str], slot: dict[str, int], item: str) -> None:
    """Remove `item` from `owned` in O(1) (the last item takes its place)."""
    at = slot.pop(item)
    last = owned.pop()
    if last != item:
        owned[at] = last
        slot[last] = at
