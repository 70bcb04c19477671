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

MIN_SCENERY = 16
"""Below this many tokens of quota a chapter gets no more scenery (the interludes fill the rest)."""
_LONG = 250  # a chapter with more scenery than this may say two things about the sky


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
    """The chapter's segments: its opening line first, then the facts in order; between them scenery (at
    most `quota` tokens of it, sharing no clause with `used`, the chapter's clause parts) and mentions.
    A fact and the sentences after it form one segment: the fitter may add interludes between them."""
    facts = chapter.facts
    gaps: list[list[tuple[str, int]]] = [[] for _ in range(len(facts) + 1)]  # gap g comes before fact g
    if quota >= MIN_SCENERY:
        _scenery(chapter, quota, draw, gaps, used, rng)
    random = rng.random
    for told in chapter.mentions:
        gap = gaps[int(random() * len(gaps))]
        gap.insert(int(random() * (len(gap) + 1)), told)
    number = chapter.number
    if chapter.lead is None:  # the first fact opens the chapter (no leading space: the fitter counts it)
        segments = [Segment(facts[0][0].text, fact_key(number, 0))]
        gaps[1][:0] = gaps[0]
        gaps[0] = []
        first = 1
    else:
        text, tokens = chapter.lead
        segments = [_joined(text, tokens, gaps[0], chapter_key(number))]
        first = 0
    for g in range(first, len(facts)):
        fact, cost = facts[g]
        segments.append(_joined(fact.text, cost, gaps[g + 1], fact_key(number, g)))
    if first:  # the opening fact's own segment carries no costed text: the gap after it stands alone
        gap = gaps[1]
        if gap:
            segments.insert(1, Segment(" ".join(t for t, _ in gap), None, sum(c for _, c in gap)))
    return tuple(segments)


def _joined(text: str, tokens: int, after: list[tuple[str, int]], key: str) -> Segment:
    """A keyed sentence and the sentences after it, as one segment (its depth is the sentence's)."""
    if not after:
        return Segment(text, key, tokens)
    return Segment(text + " " + " ".join(t for t, _ in after), key, tokens + sum(c for _, c in after))


def _scenery(
    chapter: ChapterText,
    quota: int,
    draw: SceneryDraw,
    gaps: list[list[tuple[str, int]]],
    used: set[int],
    rng: random.Random,
) -> None:
    """Fill the gaps with scenery in narrative order: the place once the protagonist is there, talk
    after the meeting, the sky at the end (and sometimes earlier), the protagonist now and then."""
    scene = chapter.scene
    t, w = scene.time, scene.weather
    random = rng.random
    later = len(gaps) - 1  # gaps after the arrival (gap 0 comes before it)
    take, counts, bare = draw.take, draw.counts, draw.bare
    talk = take(("talk", t, w, ""), quota // 5, used)
    sky = take(("sky:in" if scene.indoor else "sky", t, w, ""), quota // 4, used, 2 if quota > _LONG else 1)
    hero = take((f"hero:{chapter.pronoun}", t, w, scene.setting), quota // 6, used) if random() < 0.7 else ()
    spent = sum(counts[i] for i in talk) + sum(counts[i] for i in sky) + sum(counts[i] for i in hero)
    place = take((f"place:{scene.setting}", t, w, scene.kind), quota - spent, used, 16)
    for k, i in enumerate(place):
        gaps[1 if k < 2 else 1 + int(random() * later)].append((bare[i], counts[i]))
    if talk:
        gaps[min(2, later)].insert(0, (bare[talk[0]], counts[talk[0]]))
    for i in hero:
        gaps[1 + int(random() * later)].append((bare[i], counts[i]))
    first = 1 if scene.indoor else 0  # "Outside, ..." only once the protagonist is inside
    for k, i in enumerate(sky):
        gaps[later if k == 0 else first + int(random() * (later + 1 - first))].append((bare[i], counts[i]))
