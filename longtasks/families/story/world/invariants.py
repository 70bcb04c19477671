"""Checks that a simulated world is a consistent history (the seed repo's filtering task was not:
it sold items that were never bought). Tasks call `check_world` before deriving gold answers."""

from __future__ import annotations

from longtasks.families.story.world.simulator import (
    MAX_PLANNED_SALES,
    InventoryHistory,
    World,
    WorldConfig,
    kept_count,
)

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
        most_sales = MAX_PLANNED_SALES if config is None or config.kept_share is not None else 1
        if len(chapter.sales) > most_sales:
            raise AssertionError(f"{where}: {len(chapter.sales)} sales, allowed 0-{most_sales}")
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
    if config is not None and config.kept_share is not None:
        _check_planned(world, config)
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


def _check_planned(world: World, config: WorldConfig) -> None:
    """Planned sales keep exactly the promised number of items and buy nothing in the last chapter."""
    assert config.kept_share is not None
    bought = len(world.purchase_order())
    expected = kept_count(bought, config.kept_share, config.max_kept)
    if len(world.final_inventory()) != expected:
        raise AssertionError(
            f"{len(world.final_inventory())} items are owned at the end, but kept_share={config.kept_share} "
            f"and max_kept={config.max_kept} promise {expected} of {bought}"
        )
    if world.chapters[-1].purchases:
        raise AssertionError("with planned sales the last chapter must buy nothing")
