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
    size = len(facts) + 1
    texts: list[list[str]] = [[] for _ in range(size)]  # gap g comes before fact g
    tokens = [0] * size
    if quota >= MIN_SCENERY:
        _scenery(chapter, quota, draw, texts, tokens, used, rng)
    random = rng.random
    for text, cost in chapter.mentions:
        g = int(random() * size)
        texts[g].insert(int(random() * (len(texts[g]) + 1)), text)
        tokens[g] += cost
    number = chapter.number
    if chapter.lead is None:  # the first fact opens the chapter (no leading space: the fitter counts it)
        segments = [Segment(facts[0][0].text, fact_key(number, 0))]
        if texts[0] or texts[1]:
            segments.append(Segment(" ".join(texts[0] + texts[1]), None, tokens[0] + tokens[1]))
        first = 1
    else:
        lead, cost = chapter.lead
        if texts[0]:
            lead, cost = lead + " " + " ".join(texts[0]), cost + tokens[0]
        segments = [Segment(lead, chapter_key(number), cost)]
        first = 0
    for g in range(first, len(facts)):
        fact, cost = facts[g]
        after = texts[g + 1]
        text = fact.text + " " + " ".join(after) if after else fact.text
        segments.append(Segment(text, fact_key(number, g), cost + tokens[g + 1]))
    return tuple(segments)


_KEYS: dict[tuple[str, str, str, str], tuple[tuple[str, ...], ...]] = {}


def _keys(scene: Scene, pronoun: str) -> tuple[tuple[str, ...], ...]:
    """The pools a chapter of this scene draws from: talk, sky, the protagonist, the place."""
    t, w = scene.time, scene.weather
    keys = _KEYS.get((scene.kind, t, w, pronoun))  # the kind decides the setting and indoors
    if keys is None:
        keys = _KEYS[(scene.kind, t, w, pronoun)] = (
            ("talk", t, w, ""),
            ("sky:in" if scene.indoor else "sky", t, w, ""),
            (f"hero:{pronoun}", t, w, scene.setting),
            (f"place:{scene.setting}", t, w, scene.kind),
        )
    return keys


def _scenery(
    chapter: ChapterText,
    quota: int,
    draw: SceneryDraw,
    texts: list[list[str]],
    tokens: list[int],
    used: set[int],
    rng: random.Random,
) -> None:
    """Fill the gaps with scenery in narrative order: the place once the protagonist is there, talk
    after the meeting, the sky at the end (and sometimes earlier), the protagonist now and then."""
    scene = chapter.scene
    random = rng.random
    later = len(texts) - 1  # gaps after the arrival (gap 0 comes before it)
    take, counts, bare = draw.take, draw.counts, draw.bare
    talk_key, sky_key, hero_key, place_key = _keys(scene, chapter.pronoun)
    # Talk and the protagonist's lines are optional: none rather than one the story has told already.
    talk = take(talk_key, quota // 5, used, reuse=False)
    sky = take(sky_key, quota // 4, used, 2 if quota > _LONG else 1)
    hero = take(hero_key, quota // 6, used, reuse=False) if random() < 0.5 else ()
    spent = sum([counts[i] for i in talk]) + sum([counts[i] for i in sky]) + sum([counts[i] for i in hero])
    place = take(place_key, quota - spent, used, 16)
    for k, i in enumerate(place):
        g = 1 if k < 2 else 1 + int(random() * later)
        texts[g].append(bare[i])
        tokens[g] += counts[i]
    if talk:
        g = min(2, later)
        texts[g].insert(0, bare[talk[0]])
        tokens[g] += counts[talk[0]]
    for i in hero:
        g = 1 + int(random() * later)
        texts[g].append(bare[i])
        tokens[g] += counts[i]
    first = 1 if scene.indoor else 0  # "Outside, ..." only once the protagonist is inside
    for k, i in enumerate(sky):
        g = later if k == 0 else first + int(random() * (later + 1 - first))
        texts[g].append(bare[i])
        tokens[g] += counts[i]
