"""The story's ground truth: a seeded simulation of a journey, chapter by chapter.

Gold answers are read from this state, never from the rendered text. Chapters may hold zero, one
or two purchases, so "the item bought N purchases before X" is not always in the neighbouring
chapter; a sale only ever removes an item bought in an earlier chapter and still owned.

Sales either happen by chance (`sale_probability` per chapter, one item at most), or are planned
(`kept_share`): the items still owned at the end are drawn uniformly from all purchases, so they lie
anywhere in the story, and every other item is sold in a random later chapter (two sales at most).
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection
from dataclasses import dataclass, field

from longtasks.families.story.world.entities import (
    Person,
    draw_items,
    draw_locations,
    draw_people,
    draw_protagonist,
    item_pool_size,
)


@dataclass(frozen=True)
class InventoryHistory:
    """Every purchase and sale of a story in order, shared by all its chapters.

    Inventories are derived on demand instead of stored per chapter: 3000 stored frozensets of
    ~1000 items each cost ~150 MB and make every full garbage collection ~0.1 s slower.
    """

    acquired: tuple[str, ...]  # all purchases, in story order
    disposed: tuple[str, ...]  # all sales, in story order
    bought_through: tuple[int, ...]  # [k] = purchases made in chapters 1..k+1
    sold_through: tuple[int, ...]  # [k] = sales made in chapters 1..k+1

    @classmethod
    def from_events(cls, events: list[tuple[tuple[str, ...], tuple[str, ...]]]) -> InventoryHistory:
        """Build from each chapter's (purchases, sales), chapter 1 first."""
        acquired: list[str] = []
        disposed: list[str] = []
        bought: list[int] = []
        sold: list[int] = []
        for purchases, sales in events:
            acquired.extend(purchases)
            disposed.extend(sales)
            bought.append(len(acquired))
            sold.append(len(disposed))
        return cls(tuple(acquired), tuple(disposed), tuple(bought), tuple(sold))

    def inventory_after(self, number: int) -> frozenset[str]:
        """Items owned at the end of chapter `number` (1-based)."""
        if not 1 <= number <= len(self.bought_through):
            raise ValueError(
                f"chapter {number} is outside this story's chapters 1..{len(self.bought_through)}"
            )
        k = number - 1
        return frozenset(self.acquired[: self.bought_through[k]]).difference(
            self.disposed[: self.sold_through[k]]
        )


@dataclass(frozen=True)
class Chapter:
    """What happens in one chapter: where the protagonist is, whom they meet, what they buy and sell.

    `sales` only ever hold items bought in an earlier chapter and still owned.
    """

    number: int
    location: str
    character: str
    purchases: tuple[str, ...]
    sales: tuple[str, ...]
    history: InventoryHistory = field(repr=False, compare=False)

    @property
    def inventory_after(self) -> frozenset[str]:
        """Items owned at the end of this chapter (computed from the shared history, not stored)."""
        return self.history.inventory_after(self.number)


@dataclass(frozen=True)
class World:
    """A whole story's state. `protagonist` is the hero's full name; `pronoun` is "she" or "he"."""

    protagonist: str
    chapters: tuple[Chapter, ...]
    pronoun: str = "she"

    @property
    def protagonist_first_name(self) -> str:
        return self.protagonist.split(" ", 1)[0]

    def purchase_order(self) -> list[tuple[str, int]]:
        """(item, chapter number) for every purchase, in the order the items were acquired."""
        return [(item, ch.number) for ch in self.chapters for item in ch.purchases]

    def final_inventory(self) -> frozenset[str]:
        return self.chapters[-1].inventory_after


@dataclass(frozen=True)
class WorldConfig:
    """Knobs of the simulation.

    `purchase_weights`: relative chances of 0, 1 or 2 purchases in a chapter.
    `sale_probability`: chance that a chapter sells one item bought in an earlier chapter.
    `empty_chapters`: if set, exactly these chapters buy nothing and every other chapter buys 1-2
    (drawn with the 1:2 ratio of `purchase_weights`).
    `unique_locations`: every chapter takes place somewhere different.
    `kept_share`: plan the sales instead: this share of all purchases (at least one, at most `max_kept`
    when that is positive) is still owned at the end, drawn uniformly from the whole story; every other
    item is sold in a random later chapter (at most `MAX_PLANNED_SALES` per chapter) and the last
    chapter buys nothing, so that every sale fits. `sale_probability` is then unused.
    """

    purchase_weights: tuple[float, float, float] = (0.3, 0.45, 0.25)
    sale_probability: float = 0.25
    empty_chapters: frozenset[int] | None = None
    unique_locations: bool = False
    kept_share: float | None = None
    max_kept: int = 0

    def validate(self, num_chapters: int) -> None:
        weights = self.purchase_weights
        if (
            not isinstance(weights, tuple | list)
            or len(weights) != 3
            or any(
                isinstance(w, bool) or not isinstance(w, int | float) or not 0 <= w < math.inf
                for w in weights
            )
        ):
            raise ValueError(
                f"purchase_weights={weights!r}: need three non-negative numbers (P of 0, 1, 2 purchases)"
            )
        if self.kept_share is not None:
            if isinstance(self.kept_share, bool) or not 0.0 <= self.kept_share <= 1.0:
                raise ValueError(f"kept_share={self.kept_share!r}: must be within [0, 1] (or None)")
            if self.empty_chapters is not None:
                raise ValueError("kept_share and empty_chapters cannot be combined: give one of them")
        if isinstance(self.max_kept, bool) or not isinstance(self.max_kept, int) or self.max_kept < 0:
            raise ValueError(f"max_kept={self.max_kept!r}: must be 0 (no cap) or a positive integer")
        if sum(weights) <= 0:
            raise ValueError(f"purchase_weights={weights!r} sum to 0: at least one weight must be positive")
        if not 0.0 <= self.sale_probability <= 1.0:
            raise ValueError(f"sale_probability={self.sale_probability!r}: must be within [0, 1]")
        if self.empty_chapters is not None and not isinstance(self.empty_chapters, Collection):
            raise ValueError(
                f"empty_chapters={self.empty_chapters!r}: give a set of 1-based chapter numbers (or None)"
            )
        if self.empty_chapters is not None:
            bad = [c for c in sorted(self.empty_chapters, key=repr) if not _is_chapter(c, num_chapters)]
            if bad:
                raise ValueError(
                    f"empty_chapters holds {bad}, outside chapters 1..{num_chapters}: "
                    "give 1-based chapter numbers of this story"
                )
            if len(self.empty_chapters) < num_chapters and weights[1] + weights[2] <= 0:
                raise ValueError(
                    f"purchase_weights={weights!r} give no chance of 1 or 2 purchases, but empty_chapters "
                    "requires every other chapter to buy something"
                )


def _is_chapter(value: object, num_chapters: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= num_chapters


MAX_PLANNED_SALES = 2
"""Sales a chapter may hold when sales are planned (every chapter buys at most two items)."""


def _purchase_counts(num_chapters: int, config: WorldConfig, rng: random.Random) -> list[int]:
    weights = config.purchase_weights
    if config.kept_share is not None:
        counts = rng.choices((0, 1, 2), weights=weights, k=num_chapters)
        counts[-1] = 0  # its purchases could never be sold again
        return counts
    if config.empty_chapters is None:
        return rng.choices((0, 1, 2), weights=weights, k=num_chapters)
    if len(config.empty_chapters) == num_chapters:  # nothing to draw (and weights may forbid buying)
        return [0] * num_chapters
    counts = rng.choices((1, 2), weights=weights[1:], k=num_chapters)
    for number in config.empty_chapters:
        counts[number - 1] = 0
    return counts


def _location_sequence(num_chapters: int, config: WorldConfig, hero: Person, rng: random.Random) -> list[str]:
    """One place per chapter: all distinct, or revisits from a smaller pool (never twice in a row)."""
    if config.unique_locations:
        return draw_locations(rng, num_chapters, hero)
    pool = draw_locations(rng, max(1, min(num_chapters, 4 + num_chapters // 4)), hero)
    sequence: list[str] = []
    for _ in range(num_chapters):
        place = rng.choice(pool)
        while len(pool) > 1 and sequence and place == sequence[-1]:
            place = rng.choice(pool)
        sequence.append(place)
    return sequence


def simulate_world(num_chapters: int, seed: int, config: WorldConfig = WorldConfig()) -> World:
    """Simulate a story of `num_chapters` chapters; a pure function of (num_chapters, seed, config)."""
    if isinstance(num_chapters, bool) or not isinstance(num_chapters, int) or num_chapters < 1:
        raise ValueError(f"num_chapters={num_chapters!r}: must be an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed={seed!r}: must be an integer")
    config.validate(num_chapters)
    if 2 * num_chapters > item_pool_size():
        raise ValueError(
            f"num_chapters={num_chapters} could need {2 * num_chapters} distinct items but the item pool "
            f"holds {item_pool_size()}: use at most {item_pool_size() // 2} chapters"
        )
    rng = random.Random(seed)
    hero = draw_protagonist(rng)
    counts = _purchase_counts(num_chapters, config, rng)
    items = draw_items(rng, sum(counts))
    characters = draw_people(rng, num_chapters, avoid=hero)
    locations = _location_sequence(num_chapters, config, hero, rng)

    if config.kept_share is None:
        events = _chance_sales(counts, items, config.sale_probability, rng)
    else:
        events = _planned_sales(counts, items, config, rng)
    history = InventoryHistory.from_events(events)
    chapters = tuple(
        Chapter(index + 1, locations[index], characters[index], purchases, sales, history)
        for index, (purchases, sales) in enumerate(events)
    )
    return World(protagonist=hero.full, chapters=chapters, pronoun=hero.pronoun)


def _chance_sales(
    counts: list[int], items: list[str], sale_probability: float, rng: random.Random
) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Each chapter sells, with `sale_probability`, one owned item chosen uniformly."""
    events: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    owned: list[str] = []  # in acquisition order; a list keeps the random choice of a sale deterministic
    next_item = 0
    for count in counts:
        purchases = tuple(items[next_item : next_item + count])
        next_item += count
        sales: tuple[str, ...] = ()
        if owned and rng.random() < sale_probability:
            sales = (owned.pop(rng.randrange(len(owned))),)
        owned.extend(purchases)
        events.append((purchases, sales))
    return events


def kept_count(purchases: int, kept_share: float, max_kept: int) -> int:
    """How many items a planned story still owns at the end."""
    if purchases == 0 or kept_share == 0:
        return 0
    kept = max(1, min(purchases, round(kept_share * purchases)))
    return min(kept, max_kept) if max_kept else kept


def _planned_sales(
    counts: list[int], items: list[str], config: WorldConfig, rng: random.Random
) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Keep a uniform sample of the purchases; sell every other item in a random later chapter.

    Items are scheduled latest purchase first: each may sell in any later chapter with room, and
    later items have the fewest choices. Since the last chapter buys nothing and no chapter buys more
    than `MAX_PLANNED_SALES`, the chapters after any point can always hold the sales of the items
    bought from that point on, so a free chapter always exists.
    """
    assert config.kept_share is not None
    bought_in = [number for number, count in enumerate(counts) for _ in range(count)]
    kept = set(rng.sample(range(len(items)), kept_count(len(items), config.kept_share, config.max_kept)))
    room = [MAX_PLANNED_SALES] * len(counts)
    sales: list[list[str]] = [[] for _ in counts]
    for index in sorted((i for i in range(len(items)) if i not in kept), key=lambda i: -bought_in[i]):
        first = bought_in[index] + 1
        chapter = _free_chapter(room, first, rng)
        room[chapter] -= 1
        sales[chapter].append(items[index])
    events = []
    next_item = 0
    for number, count in enumerate(counts):
        rng.shuffle(sales[number])
        events.append((tuple(items[next_item : next_item + count]), tuple(sales[number])))
        next_item += count
    return events


def _free_chapter(room: list[int], first: int, rng: random.Random) -> int:
    """A random chapter index >= `first` with room for another sale (a few random tries, then a scan)."""
    for _ in range(8):
        chapter = rng.randrange(first, len(room))
        if room[chapter]:
            return chapter
    start = rng.randrange(first, len(room))
    for chapter in [*range(start, len(room)), *range(first, start)]:
        if room[chapter]:
            return chapter
    raise AssertionError("no chapter left for a planned sale; the schedule invariant is broken")
