"""Seeded pools of people, places and items for the story world.

Names must never run out (a 1M-token story has ~3000 chapters) and must never be confusable:
items are always exactly three lowercase words (adjective, material, noun), so one item name can
never sit inside another at word boundaries; people are two capitalised words from Faker's en_US
data; places are "the <kind> of <Town>" with towns built from Faker's en_US town patterns.

Faker's own per-call API costs ~50 µs a name (too slow for thousands of chapters and not
thread-safe when shared), so we sample Faker's data tables with the caller's `random.Random`:
same pools, deterministic per seed, no global state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

from faker.providers.address.en_US import Provider as _FakerAddress
from faker.providers.person.en_US import Provider as _FakerPerson

ADJECTIVES: tuple[str, ...] = (
    "antique", "tiny", "small", "large", "ornate", "faded", "sturdy", "delicate", "elegant", "dusty",
    "worn", "plain", "rare", "simple", "humble", "modest", "charming", "curious", "peculiar", "handsome",
    "shabby", "pristine", "battered", "treasured", "forgotten", "beautiful", "weathered", "gleaming",
    "heavy", "slender", "lightweight", "compact", "oversized", "miniature", "exquisite", "splendid",
    "quaint", "unusual", "ancient", "venerable", "crimson", "scarlet", "indigo", "emerald", "cobalt",
    "ochre", "russet", "teal", "mauve", "saffron", "turquoise", "charcoal", "speckled", "striped",
    "spotted", "checkered", "glossy", "rough", "smooth", "lopsided", "dainty", "bulky", "hefty",
    "fragile", "rugged", "scuffed", "timeworn", "gilded", "tasteful", "elaborate",
)  # fmt: skip

# Materials and the nouns that can sensibly be made of them (so "silk scarf", never "silk kettle").
MATERIAL_GROUPS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (
        ("silk", "wool", "linen", "velvet", "leather", "cotton", "felt", "lace", "tweed", "canvas",
         "suede", "satin"),
        ("scarf", "shawl", "cloak", "satchel", "purse", "hat", "cap", "belt", "waistcoat", "jacket",
         "pouch", "ribbon", "blanket", "coat", "apron", "mitten"),
    ),
    (
        ("brass", "copper", "silver", "iron", "pewter", "bronze", "tin", "steel", "nickel", "gold"),
        ("compass", "lantern", "key", "locket", "bell", "thimble", "candlestick", "spoon", "kettle",
         "whistle", "watch", "bracelet", "ring", "brooch", "buckle", "medallion", "telescope", "padlock",
         "hairpin", "ladle"),
    ),
    (
        ("oak", "walnut", "cedar", "maple", "ebony", "pine", "birch", "beech", "elm", "teak", "rosewood",
         "mahogany", "willow"),
        ("box", "flute", "cane", "comb", "chessboard", "stool", "frame", "pipe", "chest", "figurine",
         "spindle", "mallet", "ruler", "paddle", "bookend", "drum"),
    ),
    (
        ("porcelain", "glass", "clay", "crystal", "stoneware", "marble", "jade", "ceramic", "terracotta",
         "enamel", "earthenware", "soapstone"),
        ("vase", "bowl", "teapot", "jar", "bottle", "cup", "plate", "inkwell", "paperweight", "jug",
         "pitcher", "mug", "dish", "necklace", "lamp", "saucer", "ornament", "tile", "goblet"),
    ),
)  # fmt: skip

LOCATION_KINDS: tuple[str, ...] = (
    "harbour market", "old mill", "clock tower", "lighthouse", "covered bridge", "village green",
    "train station", "botanical garden", "town library", "fish market", "river docks", "cathedral square",
    "night market", "hilltop inn", "stone quarry", "windmill", "observatory", "city museum",
    "flower market", "ferry landing", "town hall", "public baths", "opera house", "old fort", "salt marsh",
    "apple orchard", "vineyard", "monastery", "abbey ruins", "crossroads inn", "tea house", "weaving hall",
    "glassworks", "printing house", "boatyard", "guildhall", "covered market", "bell foundry",
    "lantern fair", "spice bazaar", "chapel ruins", "canal lock", "seaside promenade", "hunting lodge",
)  # fmt: skip

ITEM_NOUNS: frozenset[str] = frozenset(noun for _, nouns in MATERIAL_GROUPS for noun in nouns)
ITEM_MATERIALS: frozenset[str] = frozenset(m for materials, _ in MATERIAL_GROUPS for m in materials)


@cache
def _material_nouns() -> tuple[str, ...]:
    """Every sensible "material noun" pair, in a fixed order (the index space for item sampling)."""
    return tuple(f"{m} {n}" for materials, nouns in MATERIAL_GROUPS for m in materials for n in nouns)


def item_pool_size() -> int:
    """How many distinct item names exist (the most purchases one world can hold)."""
    return len(ADJECTIVES) * len(_material_nouns())


def draw_items(rng: random.Random, count: int) -> list[str]:
    """`count` distinct item names ("weathered silk scarf"), sampled without replacement."""
    pairs = _material_nouns()
    size = len(ADJECTIVES) * len(pairs)
    if count > size:
        raise ValueError(f"asked for {count} distinct items but the item pool holds only {size}")
    return [f"{ADJECTIVES[i // len(pairs)]} {pairs[i % len(pairs)]}" for i in rng.sample(range(size), count)]


def indefinite_article(phrase: str) -> str:
    """ "a" or "an" for a phrase from our pools (all start with a regularly pronounced letter)."""
    return "an" if phrase[:1].lower() in "aeiou" else "a"


@dataclass(frozen=True)
class Person:
    """A person's name split the way templates need it (first name for the protagonist's voice)."""

    first: str
    last: str
    pronoun: str  # "she" | "he"

    @property
    def full(self) -> str:
        return f"{self.first} {self.last}"


@cache
def _name_tables() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    female = tuple(_FakerPerson.first_names_female)
    male = tuple(_FakerPerson.first_names_male)
    last = tuple(_FakerPerson.last_names)
    return female, male, last


def draw_protagonist(rng: random.Random) -> Person:
    """The hero: a gendered first name (so pronouns fit) and a last name."""
    female, male, last = _name_tables()
    if rng.random() < 0.5:
        return Person(rng.choice(female), rng.choice(last), "she")
    return Person(rng.choice(male), rng.choice(last), "he")


def draw_people(rng: random.Random, count: int, avoid: Person) -> list[str]:
    """`count` distinct full names that share neither name with `avoid` (the protagonist), so a
    sentence like "Anna met Anna Jones" can never occur."""
    female, male, last = _name_tables()
    firsts = female + male
    banned = {avoid.first, avoid.last}
    capacity = (len(set(firsts)) - 2) * (len(last) - 2)
    if count > capacity // 2:
        raise ValueError(
            f"asked for {count} distinct characters; the name pool supports at most {capacity // 2}"
        )
    seen: set[str] = {avoid.full}
    names: list[str] = []
    while len(names) < count:
        first, family = rng.choice(firsts), rng.choice(last)
        name = f"{first} {family}"
        if first in banned or family in banned or name in seen:
            continue
        seen.add(name)
        names.append(name)
    return names


@cache
def _town_tables() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    prefixes = tuple(_FakerAddress.city_prefixes)
    suffixes = tuple(dict.fromkeys(_FakerAddress.city_suffixes))  # Faker lists "mouth" twice
    female, male, last = _name_tables()
    return prefixes, suffixes, female + male, last


def _draw_town(rng: random.Random) -> str:
    """A town name following Faker's en_US city patterns ("Lake Maryton", "North Anna", "Smithburgh")."""
    prefixes, suffixes, firsts, last = _town_tables()
    pattern = rng.randrange(4)
    if pattern == 0:
        return f"{rng.choice(prefixes)} {rng.choice(firsts)}{rng.choice(suffixes)}"
    if pattern == 1:
        return f"{rng.choice(prefixes)} {rng.choice(firsts)}"
    if pattern == 2:
        return f"{rng.choice(firsts)}{rng.choice(suffixes)}"
    return f"{rng.choice(last)}{rng.choice(suffixes)}"


def location_pool_size() -> int:
    prefixes, suffixes, firsts, last = _town_tables()
    towns = len(prefixes) * len(firsts) * (len(suffixes) + 1) + (len(firsts) + len(last)) * len(suffixes)
    return towns * len(LOCATION_KINDS)


def draw_locations(rng: random.Random, count: int, avoid: Person) -> list[str]:
    """`count` distinct places "the <kind> of <Town>"; no town contains the protagonist's names."""
    capacity = location_pool_size()
    if count > capacity // 2:
        raise ValueError(
            f"asked for {count} distinct locations; the place pool supports at most {capacity // 2}"
        )
    banned = {avoid.first, avoid.last}
    seen: set[str] = set()
    places: list[str] = []
    while len(places) < count:
        town = _draw_town(rng)
        if any(word in banned for word in town.split()):
            continue
        place = f"the {rng.choice(LOCATION_KINDS)} of {town}"
        if place not in seen:
            seen.add(place)
            places.append(place)
    return places
