"""Checks that a simulated world is a consistent history (the seed repo's filtering task was not:
it sold items that were never bought). Tasks call `check_world` before deriving gold answers."""

from __future__ import annotations

from longtasks.families.story.world.simulator import InventoryHistory, World, WorldConfig

_INVENTORY_SPOT_CHECKS = 16  # chapters whose derived inventory is compared with a replay (plus the last)


def check_world(world: World, config: WorldConfig | None = None) -> None:
    """Raise AssertionError naming the first broken rule. Runs in time linear in the story length.

    `config`, when given, adds its promises (`empty_chapters`, `unique_locations`) to the checks.
    """
    if not world.chapters:
        raise AssertionError("world has no chapters")
    ever_bought: set[str] = set()
    owned: set[str] = set()
    locations: set[str] = set()
    characters: set[str] = set()
    history = world.chapters[0].history
    step = max(1, len(world.chapters) // _INVENTORY_SPOT_CHECKS)
    for expected_number, chapter in enumerate(world.chapters, start=1):
        where = f"chapter {chapter.number}"
        if chapter.number != expected_number:
            raise AssertionError(
                f"{where}: chapters must be numbered 1..N in order, expected {expected_number}"
            )
        if chapter.history is not history:
            raise AssertionError(f"{where}: belongs to a different inventory history than chapter 1")
        if not 0 <= len(chapter.purchases) <= 2:
            raise AssertionError(f"{where}: {len(chapter.purchases)} purchases, allowed 0-2")
        if len(chapter.sales) > 1:
            raise AssertionError(f"{where}: {len(chapter.sales)} sales, allowed 0-1")
        for item in chapter.sales:
            if item not in owned:
                raise AssertionError(f"{where}: sells {item!r}, which was not owned before this chapter")
            owned.discard(item)
        for item in chapter.purchases:
            if item in ever_bought:
                raise AssertionError(f"{where}: buys {item!r}, which was already bought earlier")
            ever_bought.add(item)
            owned.add(item)
        if chapter.number % step == 0 or chapter.number == len(world.chapters):
            _check_inventory(where, chapter.inventory_after, owned)
        if chapter.character in characters:
            raise AssertionError(f"{where}: character {chapter.character!r} was already met earlier")
        if chapter.character == world.protagonist:
            raise AssertionError(f"{where}: the protagonist meets themself")
        characters.add(chapter.character)
        if config is not None and config.unique_locations and chapter.location in locations:
            raise AssertionError(
                f"{where}: location {chapter.location!r} repeats but unique_locations is set"
            )
        locations.add(chapter.location)
    expected = InventoryHistory.from_events([(ch.purchases, ch.sales) for ch in world.chapters])
    if expected != history:
        raise AssertionError("the shared inventory history disagrees with the chapters' purchases and sales")
    if config is not None and config.empty_chapters is not None:
        empty = {ch.number for ch in world.chapters if not ch.purchases}
        if empty != set(config.empty_chapters):
            raise AssertionError(
                f"chapters without purchases are {sorted(empty)}, but empty_chapters asks for "
                f"exactly {sorted(config.empty_chapters)}"
            )


def _check_inventory(where: str, derived: frozenset[str], owned: set[str]) -> None:
    if derived != owned:
        extra, missing = sorted(derived - owned), sorted(owned - derived)
        raise AssertionError(
            f"{where}: inventory_after disagrees with history (extra {extra}, missing {missing})"
        )
