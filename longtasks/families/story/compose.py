"""A chapter as the model reads it: an opening line, the fact sentences in story order, scenery that fits
the chapter's scene between them, and mentions (confusers) anywhere.

The family fills each chapter with scenery up to a token quota; the generic fitter then tops every
chapter up to the exact length with interludes (which fit any scene), so the family never has to hit
an exact count itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from longtasks.draft import Segment
from longtasks.families.story.filler import SceneryDraw
from longtasks.families.story.world import FactSentence
from longtasks.families.story.world.scenery import Scene

MIN_SCENERY = 8
"""Below this many tokens of quota a chapter gets no more scenery (the interludes fill the rest)."""
_MAX_MISSES = 3


@dataclass(frozen=True)
class ChapterText:
    """What a chapter says apart from its scenery, with the token cost of each sentence."""

    number: int
    scene: Scene
    pronoun: str
    lead: tuple[str, int] | None  # the opening line (text, tokens right after the heading); None: a fact
    facts: tuple[tuple[FactSentence, int], ...]
    mentions: tuple[tuple[str, int], ...]


def fact_key(chapter: int, fact: int) -> str:
    return f"chapter{chapter}.fact{fact}"


def chapter_key(chapter: int) -> str:
    """The key of a chapter's opening line: where evidence about the chapter as a whole sits."""
    return f"chapter{chapter}"


def compose_chapter(
    chapter: ChapterText, quota: int, draw: SceneryDraw, used: set[int], rng: random.Random
) -> tuple[Segment, ...]:
    """The chapter's segments: its opening line first, then facts in order with scenery (at most `quota`
    tokens of it, never a sentence in `used`, the chapter's corpus ids) and mentions in the gaps."""
    facts = chapter.facts
    gaps: list[list[Segment]] = [[] for _ in range(len(facts) + 1)]  # gap g comes before fact g
    _scenery(chapter, quota, draw, gaps, used, rng)
    for text, tokens in chapter.mentions:
        gap = gaps[int(rng.random() * len(gaps))]
        gap.insert(int(rng.random() * (len(gap) + 1)), Segment(text, tokens=tokens))
    segments = []
    if chapter.lead is not None:
        text, tokens = chapter.lead
        segments.append(Segment(text, chapter_key(chapter.number), tokens))
    else:  # the first fact opens the chapter (no leading space there: let the fitter count it)
        fact, _ = facts[0]
        segments.append(Segment(fact.text, fact_key(chapter.number, 0)))
        gaps[1] = gaps[0] + gaps[1]
        gaps[0] = []
    for g, gap in enumerate(gaps):
        segments += gap
        if g < len(facts) and (g > 0 or chapter.lead is not None):
            fact, cost = facts[g]
            segments.append(Segment(fact.text, fact_key(chapter.number, g), cost))
    return tuple(segments)


def _scenery(
    chapter: ChapterText,
    quota: int,
    draw: SceneryDraw,
    gaps: list[list[Segment]],
    used: set[int],
    rng: random.Random,
) -> None:
    """Fill the gaps with scenery in narrative order: the place after the arrival, talk after the
    meeting, the sky toward the end; then more of the place and the protagonist anywhere."""
    scene = chapter.scene
    t, w = scene.time, scene.weather
    pools = {
        "sky": ("sky:in" if scene.indoor else "sky", t, w, ""),
        "place": (f"place:{scene.setting}", t, w, scene.kind),
        "hero": (f"hero:{chapter.pronoun}", t, w, scene.setting),
        "talk": ("talk", t, w, ""),
    }
    after_arrival, after_meeting, end = 1, min(2, len(gaps) - 1), len(gaps) - 1
    plan = [(after_arrival, "place"), (after_meeting, "talk"), (end, "sky"), (after_arrival, "place")]
    plan += [(end, "place"), (after_arrival, "hero")]
    texts, counts = draw.corpus.texts, draw.counts
    misses = 0
    step = 0
    while quota >= MIN_SCENERY and misses < _MAX_MISSES:
        if step < len(plan):
            gap, kind = plan[step]
        else:
            gap = int(rng.random() * len(gaps))
            kind = "hero" if rng.random() < 0.15 else "place" if rng.random() < 0.8 else "sky"
            if kind != "sky":  # the place is described once the protagonist is there
                gap = max(gap, after_arrival)
            elif gap >= after_meeting and kind == "place" and rng.random() < 0.1:
                kind = "talk"
        step += 1
        found = draw.take(pools[kind], quota, used)
        if found is None:
            misses += 1
            continue
        gaps[gap].append(Segment(texts[found][1:], tokens=counts[found]))
        quota -= counts[found]
