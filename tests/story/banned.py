"""Collocations that contradict their setting or themselves, found in the first release's filler (issue 15):
a river that "grew steeper with every step", "the morning sky glowed orange and pink at sunset", "a soft
golden glow glowed". No sentence of a story may match one. Kept here, in the tests, so that the generator
cannot filter against its own list."""

from __future__ import annotations

import re

_WATER = r"(river|stream|water|canal|current|sea|tide|waves?|creeks?)"
BANNED: dict[str, re.Pattern[str]] = {
    "water that climbs": re.compile(rf"\b{_WATER}\b[^.;]*\b(steeper|dusty|uphill)\b", re.I),
    "morning at night": re.compile(r"\bmorning\b[^.;]*\b(sunset|dusk|evening|stars|moon|twilight)\b", re.I),
    "evening in the morning": re.compile(
        r"\b(sunset|dusk|evening|stars|moon|twilight)\b[^.;]*\bmorning\b", re.I
    ),
    "afternoon stars": re.compile(r"\bafternoon\b[^.;]*\b(dawn|sunrise|stars|moon)\b", re.I),
    "sun in the rain": re.compile(
        r"\b(sunshine|sunlight|cloudless)\b[^.;]*\b(rain|drizzle|fog|mist)\b", re.I
    ),
    "rain in the sun": re.compile(
        r"\b(rain|drizzle|fog|mist)\b[^.;]*\b(sunshine|sunlight|cloudless)\b", re.I
    ),
    "near and far": re.compile(
        r"\bnearby[^.;,]*\bin the distance\b|\bin the distance\b[^.;,]*\bnearby\b", re.I
    ),
    "a glow that glowed": re.compile(r"\b(glow\w*)\b[^.;]*\b(glow\w*)\b", re.I),
}


def banned_in(sentence: str) -> list[str]:
    """Names of the banned collocations `sentence` contains."""
    return [name for name, pattern in BANNED.items() if pattern.search(sentence)]
