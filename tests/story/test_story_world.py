"""The story world's state: invariants, uniqueness, config promises, determinism, scale."""

from __future__ import annotations

import dataclasses
import itertools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from longtasks.families.story.world import (
    Chapter,
    InventoryHistory,
    World,
    WorldConfig,
    check_world,
    simulate_world,
)
from longtasks.families.story.world.entities import ITEM_MATERIALS, ITEM_NOUNS, LOCATION_KINDS, item_pool_size
from longtasks.families.story.world.simulator import MAX_PLANNED_SALES, kept_count

SETTINGS = settings(max_examples=40, deadline=None)

configs = st.builds(
    WorldConfig,
    purchase_weights=st.tuples(*[st.floats(0, 1) for _ in range(3)]).filter(lambda w: sum(w) > 0.01),
    sale_probability=st.floats(0, 1),
    unique_locations=st.booleans(),
)


def replay(world: World) -> list[frozenset[str]]:
    """Inventories after each chapter, recomputed independently of the simulator."""
    owned: set[str] = set()
    out = []
    for chapter in world.chapters:
        for item in chapter.sales:
            assert item in owned, f"chapter {chapter.number} sells {item!r} that is not owned"
            owned.remove(item)
        owned.update(chapter.purchases)
        out.append(frozenset(owned))
    return out


@SETTINGS
@given(num_chapters=st.integers(1, 120), seed=st.integers(0, 2**63), config=configs)
def test_random_worlds_keep_their_invariants(num_chapters: int, seed: int, config: WorldConfig) -> None:
    world = simulate_world(num_chapters, seed, config)
    check_world(world, config)
    assert [c.number for c in world.chapters] == list(range(1, num_chapters + 1))
    bought = [item for item, _ in world.purchase_order()]
    assert len(bought) == len(set(bought)), "an item name was reused"
    assert all(0 <= len(c.purchases) <= 2 and len(c.sales) <= 1 for c in world.chapters)
    assert not any(set(c.sales) & set(c.purchases) for c in world.chapters)
    # sales only of items bought in an EARLIER chapter and still owned, inventories match a replay
    inventories = replay(world)
    for chapter, expected in zip(world.chapters, inventories, strict=True):
        assert chapter.inventory_after == expected
        before = inventories[chapter.number - 2] if chapter.number > 1 else frozenset()
        assert set(chapter.sales) <= before
    assert world.final_inventory() == inventories[-1]
    assert world.purchase_order() == [(i, c.number) for c in world.chapters for i in c.purchases]
    characters = [c.character for c in world.chapters]
    assert len(set(characters)) == num_chapters
    hero_first, hero_last = world.protagonist.split(" ")
    for name in characters:
        first, last = name.split(" ")
        assert hero_first not in (first, last) and hero_last not in (first, last)
    if config.unique_locations:
        assert len({c.location for c in world.chapters}) == num_chapters
    else:
        assert all(a.location != b.location for a, b in zip(world.chapters, world.chapters[1:], strict=False))


@SETTINGS
@given(
    num_chapters=st.integers(2, 150),
    seed=st.integers(0, 2**63),
    share=st.floats(0, 1),
    cap=st.integers(0, 12),
    weights=st.tuples(*[st.floats(0, 1) for _ in range(3)]).filter(lambda w: w[1] + w[2] > 0.01),
)
def test_planned_sales_keep_the_promised_items(num_chapters, seed, share, cap, weights) -> None:
    """Planned sales: exactly `kept_count` items are owned at the end, every other item is sold in a
    later chapter (at most two sales a chapter), and the last chapter buys nothing."""
    config = WorldConfig(purchase_weights=weights, kept_share=share, max_kept=cap)
    world = simulate_world(num_chapters, seed, config)
    check_world(world, config)
    bought = [item for item, _ in world.purchase_order()]
    assert len(world.final_inventory()) == kept_count(len(bought), share, cap)
    assert not world.chapters[-1].purchases
    assert all(len(c.sales) <= MAX_PLANNED_SALES for c in world.chapters)
    assert set(bought) - world.final_inventory() == {item for c in world.chapters for item in c.sales}
    inventories = replay(world)
    assert world.final_inventory() == inventories[-1]


def test_planned_inventory_is_capped_and_spread_over_the_story() -> None:
    """The final inventory of a long story stays at the cap, and its items were bought anywhere: their
    purchase positions average near the middle of the story, not near its end."""
    config = WorldConfig(kept_share=0.1, max_kept=10)
    positions = []
    for seed in range(20):
        world = simulate_world(3000, seed, config)
        order = world.purchase_order()
        kept = world.final_inventory()
        assert len(kept) == 10
        positions += [rank / len(order) for rank, (item, _) in enumerate(order) if item in kept]
    assert 0.4 < sum(positions) / len(positions) < 0.6
    assert min(positions) < 0.1 and max(positions) > 0.9


@SETTINGS
@given(data=st.data(), num_chapters=st.integers(1, 80), seed=st.integers(0, 10**9))
def test_empty_chapters_are_exactly_the_requested_ones(data, num_chapters: int, seed: int) -> None:
    empty = data.draw(st.frozensets(st.integers(1, num_chapters)))
    config = WorldConfig(empty_chapters=empty, purchase_weights=(0.9, 0.5, 0.5))
    world = simulate_world(num_chapters, seed, config)
    check_world(world, config)
    assert {c.number for c in world.chapters if not c.purchases} == set(empty)
    assert all(1 <= len(c.purchases) <= 2 for c in world.chapters if c.number not in empty)


def test_items_are_three_words_from_the_pools() -> None:
    world = simulate_world(300, 5)
    for item, _ in world.purchase_order():
        _adjective, material, noun = item.split(" ")
        assert item == item.lower()
        assert material in ITEM_MATERIALS and noun in ITEM_NOUNS
    for chapter in world.chapters:
        assert chapter.location.startswith("the ")
        assert any(chapter.location.startswith(f"the {kind} of ") for kind in LOCATION_KINDS)


def test_multihop_neighbours_are_not_always_in_the_adjacent_chapter() -> None:
    """'The item bought N purchases before X' must sometimes be in X's own chapter, sometimes further back."""
    order = simulate_world(200, 11).purchase_order()
    gaps = {later - earlier for (_, earlier), (_, later) in itertools.pairwise(order)}
    assert 0 in gaps and 1 in gaps and any(g >= 2 for g in gaps)


def test_same_seed_same_world_and_different_seeds_differ() -> None:
    config = WorldConfig(unique_locations=True)
    a, b = simulate_world(60, 123, config), simulate_world(60, 123, config)
    assert a == b
    assert [c.inventory_after for c in a.chapters] == [c.inventory_after for c in b.chapters]
    others = {simulate_world(60, seed, config) for seed in range(5)}
    assert len(others) == 5


def test_a_million_token_story_simulates_fast_with_unique_names() -> None:
    start = time.perf_counter()
    world = simulate_world(3000, 99, WorldConfig(unique_locations=True))
    elapsed = time.perf_counter() - start
    check_world(world, WorldConfig(unique_locations=True))
    assert elapsed < 0.5, f"simulating 3000 chapters took {elapsed:.2f} s"
    assert len({c.character for c in world.chapters}) == 3000
    assert len({c.location for c in world.chapters}) == 3000
    assert item_pool_size() >= 2 * 10_000  # room for stories of 10k chapters with 2 purchases each


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_chapters": 0}, "num_chapters=0"),
        ({"num_chapters": -3}, "num_chapters=-3"),
        ({"num_chapters": "7"}, "num_chapters='7'"),
        ({"num_chapters": True}, "num_chapters=True"),
        ({"seed": 1.5}, "seed=1.5"),
        ({"config": WorldConfig(purchase_weights=(0, 0, 0))}, "sum to 0"),
        ({"config": WorldConfig(purchase_weights=(-1, 1, 1))}, "purchase_weights=(-1, 1, 1)"),
        ({"config": WorldConfig(purchase_weights=(1, 1))}, "purchase_weights=(1, 1)"),
        ({"config": WorldConfig(purchase_weights=(1, float("nan"), 1))}, "purchase_weights"),
        ({"config": WorldConfig(sale_probability=1.5)}, "sale_probability=1.5"),
        ({"config": WorldConfig(kept_share=1.5)}, "kept_share=1.5"),
        ({"config": WorldConfig(max_kept=-1)}, "max_kept=-1"),
        ({"config": WorldConfig(kept_share=0.5, empty_chapters=frozenset({2}))}, "cannot be combined"),
        ({"config": WorldConfig(empty_chapters=3)}, "empty_chapters=3"),
        ({"config": WorldConfig(empty_chapters=frozenset({0, 3}))}, "[0]"),
        ({"config": WorldConfig(empty_chapters=frozenset({11}))}, "[11]"),
        (
            {"config": WorldConfig(empty_chapters=frozenset({2}), purchase_weights=(1, 0, 0))},
            "empty_chapters",
        ),
        ({"num_chapters": item_pool_size()}, "at most"),
    ],
)
def test_bad_arguments_are_named_in_the_error(kwargs: dict, message: str) -> None:
    args = {"num_chapters": 10, "seed": 0, "config": WorldConfig(), **kwargs}
    with pytest.raises(ValueError) as error:
        simulate_world(args["num_chapters"], args["seed"], args["config"])
    assert message in str(error.value)


def test_all_chapters_empty_is_allowed_even_without_purchase_weights() -> None:
    config = WorldConfig(empty_chapters=frozenset({1, 2, 3}), purchase_weights=(1, 0, 0))
    world = simulate_world(3, 0, config)
    assert world.purchase_order() == [] and world.final_inventory() == frozenset()


def _rebuild(world: World, chapters: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]) -> World:
    """A world with the given (location, character, purchases, sales), sharing one consistent history."""
    history = InventoryHistory.from_events([(p, s) for _, _, p, s in chapters])
    built = tuple(Chapter(i + 1, loc, who, p, s, history) for i, (loc, who, p, s) in enumerate(chapters))
    return dataclasses.replace(world, chapters=built)


def test_check_world_catches_broken_histories() -> None:
    world = simulate_world(3, 0)
    ok = [
        ("the old mill of Aville", "Ann Bee", ("tiny tin key",), ()),
        ("the old mill of Bville", "Cy Dee", (), ()),
    ]
    check_world(_rebuild(world, ok))
    broken = {
        "not owned": [ok[0], ("the old mill of Bville", "Cy Dee", (), ("plain oak box",))],
        "already bought": [ok[0], ("the old mill of Bville", "Cy Dee", ("tiny tin key",), ())],
        "allowed 0-2": [("x", "Ann Bee", ("a b c", "d e f", "g h i"), ())],
        "already met": [ok[0], ("the old mill of Bville", "Ann Bee", (), ())],
    }
    for message, chapters in broken.items():
        with pytest.raises(AssertionError, match=message):
            check_world(_rebuild(world, chapters))
    two_sales = [
        ok[0],
        ("b", "Cy Dee", ("j k l", "m n o"), ()),
        ("c", "Ed Fox", (), ("tiny tin key", "j k l")),
    ]
    check_world(_rebuild(world, two_sales), WorldConfig(kept_share=0.3))  # planned sales: up to two
    with pytest.raises(AssertionError, match="allowed 0-1"):  # chance sales: one at most
        check_world(_rebuild(world, two_sales), WorldConfig())
    # a history that disagrees with the chapters' own purchases
    lying = InventoryHistory.from_events([((), ()), ((), ())])
    chapters = tuple(Chapter(i + 1, loc, who, p, s, lying) for i, (loc, who, p, s) in enumerate(ok))
    with pytest.raises(AssertionError, match="inventory"):
        check_world(dataclasses.replace(world, chapters=chapters))
    with pytest.raises(AssertionError, match="exactly"):
        check_world(_rebuild(world, ok), WorldConfig(empty_chapters=frozenset({1})))
    same_place = [ok[0], ("the old mill of Aville", "Cy Dee", (), ())]
    with pytest.raises(AssertionError, match="unique_locations"):
        check_world(_rebuild(world, same_place), WorldConfig(unique_locations=True))


def test_inventory_after_rejects_chapters_outside_the_story() -> None:
    history = simulate_world(4, 0).chapters[0].history
    with pytest.raises(ValueError, match="chapter 5"):
        history.inventory_after(5)
