"""Words that fix a time of day, a weather or a setting: a chapter may only use those of its scene."""

from __future__ import annotations

import re

TIME_WORDS: dict[str, frozenset[str]] = {
    "morning": frozenset({"morning", "dawn", "sunrise", "breakfast"}),
    "afternoon": frozenset({"afternoon", "midday", "noon"}),
    "evening": frozenset(
        {
            "evening",
            "dusk",
            "sunset",
            "twilight",
            "stars",
            "moon",
            "darkening",
            "lamplight",
        }
    ),
}
WEATHER_WORDS: dict[str, frozenset[str]] = {
    "clear": frozenset({"sunshine", "sunlight", "cloudless", "sparkled", "sparkling"}),
    "overcast": frozenset({"overcast", "sunless", "gloom"}),
    "rain": frozenset({"rain", "rainy", "drizzle", "shower", "puddles", "raindrops", "sodden"}),
    "mist": frozenset({"mist", "misty", "fog", "foggy", "foghorn"}),
    "wind": frozenset({"windy", "gusty", "blustery", "gusted"}),
}
"""Words that belong to one weather only. (Words any weather may use, like "cloud", "grey" or "wind",
are not listed.)"""

WORD_SETTINGS: dict[str, frozenset[str]] = {
    word: frozenset(settings.split())
    for word, settings in {
        "gulls": "coast", "seabirds": "coast", "tide": "coast", "seaweed": "coast", "barnacles": "coast",
        "quay": "coast", "sea": "coast", "waves": "coast river", "heron": "river", "towpath": "river",
        "willows": "river", "barge": "river", "downstream": "river", "upstream": "river",
        "awnings": "market", "crowd": "market", "stalls": "market coast", "pigeons": "town",
        "carriage": "town", "chimneys": "town", "corridors": "hall", "visitors": "hall", "looms": "works",
        "furnaces": "works", "apprentices": "works", "foreman": "works", "sheep": "country",
        "cows": "country", "hedgerows": "country", "meadow": "country", "jackdaws": "old", "ivy": "old",
        "monks": "old", "cloister": "old", "ramparts": "old",
    }.items()
}  # fmt: skip
"""Words only some settings' scenery uses (a river chapter never mentions gulls, a market no sheep)."""

_WORD = re.compile(r"[a-z]+")


def words_of(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))
