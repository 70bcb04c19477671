"""What a story task is: typed knobs with the paper's defaults, the questions it asks of a simulated
world, and how world + questions become a draft (chapters as sections; fact sentences, mentions and
scenery as segments; interludes as the filler that makes the length exact)."""

from __future__ import annotations

import gc
import random
from abc import abstractmethod
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, TypeVar

from longtasks.draft import Draft, Section, Segment
from longtasks.families.story.compose import ChapterText, chapter_key, compose_chapter, fact_key
from longtasks.families.story.counting import count_pieces
from longtasks.families.story.filler import SCENERY, Interludes, SceneryDraw, lead_counts
from longtasks.families.story.filler import prepare as prepare_scenery
from longtasks.families.story.prompt import story_frame
from longtasks.families.story.world import (
    RenderedChapter,
    StoryRenderer,
    World,
    WorldConfig,
    simulate_world,
)
from longtasks.families.story.world.mentions import Mention, choose_mentions
from longtasks.families.story.world.scenery import Scene, place_kind, scenery_corpus
from longtasks.fit import frame_overhead
from longtasks.prompt import PromptFrame
from longtasks.task import BuildContext, Knobs, Redraw, Task
from longtasks.tokenizer import LengthTokenizer

__all__ = ["SCENERY", "StoryKnobs", "StoryTask"]

INTERLUDE_TOKENS = 12
"""Tokens per chapter left to the interludes, with which the fitter makes the length exact."""
MIN_INTERLUDE = 8
"""When the length is short: the fewest tokens left to the interludes (0 is fine too)."""
MAX_LEAD_TOKENS = 24


@dataclass(frozen=True)
class StoryKnobs(Knobs):
    """Knobs every story task shares.

    chapter_tokens: average tokens per chapter; the chapter count grows with the length (a 1M-token
        story has thousands of chapters). num_chapters: fix the chapter count instead (0 = automatic).
    confusers: mentions per chapter, on average, of people, places and items of the story in roles that
        answer no question (a person talked about, a place seen far off, an item still owned), so
        that names alone do not give the answers away. 0 = none.
    """

    chapter_tokens: int = 300
    num_chapters: int = 0
    confusers: float = 2.5

    def validate(self) -> None:
        if not 0.0 <= self.confusers <= 10.0:
            raise ValueError(f"confusers={self.confusers} must be within [0, 10] (mentions per chapter)")
        if self.chapter_tokens < 40:
            raise ValueError(f"chapter_tokens={self.chapter_tokens} is too small: use at least 40")
        if self.num_chapters < 0:
            raise ValueError(f"num_chapters={self.num_chapters} must be 0 (automatic) or positive")


SK = TypeVar("SK", bound=StoryKnobs)


class WorldTooSmall(Redraw):
    """This random world cannot pose the question (e.g. too few purchases); another draw may."""


@dataclass(frozen=True)
class Evidence:
    """Where a gold fact is stated: a chapter and, if the fact is one sentence, its kind and value."""

    chapter: int
    kind: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class TaskQuestions:
    questions: list[str]
    answer: Any
    evidence: list[Evidence]
    example: str  # a format example for the answer instructions (never a real answer)


@dataclass(frozen=True)
class StoryMeta:
    """The story fields of a row: the chapters holding the evidence, and how many chapters there are."""

    evidence_chapters: list[int]
    num_chapters: int


@dataclass(frozen=True)
class StoryTruth:
    """The simulated world, its rendered facts, each chapter's scene and mentions (for checks; never
    stored)."""

    world: World
    chapters: list[RenderedChapter]
    scenes: list[Scene]
    mentions: list[tuple[Mention, ...]]


@cache
def _renderer() -> StoryRenderer:
    return StoryRenderer()


class StoryTask(Task[SK]):
    """A task over a simulated story world. Subclasses ask questions; simulation, rendering and
    exact-length fitting are shared. The scale is the chapter count."""

    family = "story"
    meta_type = StoryMeta

    def min_chapters(self, knobs: SK) -> int:
        return 2

    def world_config(self, knobs: SK, num_chapters: int, rng: random.Random) -> WorldConfig:
        return WorldConfig()

    @abstractmethod
    def ask(self, world: World, knobs: SK, rng: random.Random, index: int) -> TaskQuestions:
        """Questions, gold answer (from the world state, never from the text) and evidence."""

    def initial_scale(self, knobs: SK, length: int) -> int:
        if knobs.num_chapters:
            return knobs.num_chapters
        return max(self.min_chapters(knobs), length // knobs.chapter_tokens)

    def smaller_scale(self, knobs: SK, scale: int) -> int | None:
        if knobs.num_chapters:
            return None
        fewer = max(self.min_chapters(knobs), int(scale * 0.6))
        return None if fewer == scale else fewer

    def build(self, knobs: SK, scale: int, rng: random.Random, context: BuildContext) -> Draft:
        # What every sample reads is built first (once per process), with the collector on. Then a long
        # story's objects all live until it is fitted: no garbage collection meanwhile (as in
        # `fit_draft`; a plain try/finally allocates nothing once the collector is back on, so no
        # collection starts before the fitter pauses it again).
        prepare_scenery(context.tokenizer)
        _renderer()
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._build(knobs, scale, rng, context)
        finally:
            if enabled:
                gc.enable()

    def _build(self, knobs: SK, scale: int, rng: random.Random, context: BuildContext) -> Draft:
        world = simulate_world(scale, rng.getrandbits(63), self.world_config(knobs, scale, rng))
        asked = self.ask(world, knobs, rng, context.index)
        renderer = _renderer()
        told: set[str] = set()
        chapters = [renderer.render_chapter(world, chapter, rng, told) for chapter in world.chapters]
        scenes = _scenes(world, rng)
        mentions = choose_mentions(world, knobs.confusers, rng)
        frame = story_frame(world.protagonist, asked.questions, self.answer_kind, asked.example)
        draw = SceneryDraw(context.tokenizer, rng)
        texts, used = _chapter_texts(world, chapters, scenes, mentions, draw, context.tokenizer, rng, told)
        texts, quotas = _scenery_quotas(texts, chapters, frame, context, rng)
        sections = tuple(
            Section(rendered.header, compose_chapter(text, quota, draw, chapter_used, rng), lead=True)
            for rendered, text, quota, chapter_used in zip(chapters, texts, quotas, used, strict=True)
        )
        return Draft(
            frame=frame,
            sections=sections,
            filler=Interludes(),
            question="\n".join(asked.questions),
            answer=asked.answer,
            evidence=tuple(_evidence_key(e, chapters, texts) for e in asked.evidence),
            meta=StoryMeta([e.chapter for e in asked.evidence], scale),
            truth=StoryTruth(world, chapters, scenes, mentions),
        )


def _scenes(world: World, rng: random.Random) -> list[Scene]:
    corpus = scenery_corpus()
    scenes: list[Scene] = []
    for chapter in world.chapters:
        scenes.append(corpus.draw_scene(place_kind(chapter.location), rng, scenes[-1] if scenes else None))
    return scenes


def _chapter_texts(
    world: World,
    chapters: list[RenderedChapter],
    scenes: list[Scene],
    mentions: list[tuple[Mention, ...]],
    draw: SceneryDraw,
    tokenizer: LengthTokenizer,
    rng: random.Random,
    told: set[str],
) -> tuple[list[ChapterText], list[set[int]]]:
    """Each chapter's opening line, facts and mention sentences with their token costs (one batch);
    `told`: the sentences the story has told so far (a mention is never worded like an earlier one)."""
    renderer = _renderer()
    flat = renderer.render_mentions(world, (m for ms in mentions for m in ms), rng, told)
    said: list[list[str]] = []
    at = 0
    for ms in mentions:
        said.append(flat[at : at + len(ms)])
        at += len(ms)
    used: list[set[int]] = [set() for _ in chapters]
    leads = []
    for scene, chapter_used in zip(scenes, used, strict=True):
        kind = "sky" if scene.indoor or rng.random() < 0.5 else f"place:{scene.setting}"
        key = (kind, scene.time, scene.weather, scene.kind if kind != "sky" else "")
        lead = draw.take(key, MAX_LEAD_TOKENS, chapter_used) or draw.take(
            ("sky", scene.time, scene.weather, "", "single"), 10**6, chapter_used
        )
        assert lead, f"scenery.yaml has no opening line for {scene}"
        leads.append(lead[0])
    pieces = [" " + f.text for c in chapters for f in c.facts] + [" " + t for ts in said for t in ts]
    costs = iter(count_pieces(tokenizer, pieces))
    fact_costs = [tuple((f, next(costs)) for f in c.facts) for c in chapters]
    said_costs = [tuple((t, next(costs)) for t in ts) for ts in said]
    lead_costs = lead_counts(tokenizer, leads)
    bare = draw.bare
    texts = [
        ChapterText(c.number, scene, world.pronoun, (bare[lead], lead_cost), facts, told)
        for c, scene, lead, lead_cost, facts, told in zip(
            chapters, scenes, leads, lead_costs, fact_costs, said_costs, strict=True
        )
    ]
    return texts, used


def _scenery_quotas(
    texts: list[ChapterText],
    chapters: list[RenderedChapter],
    frame: PromptFrame,
    context: BuildContext,
    rng: random.Random,
) -> tuple[list[ChapterText], list[int]]:
    """Scenery tokens per chapter: what the length leaves after the prompt, headings, facts, opening
    lines, mentions and the interludes' share, spread over the chapters with varied sizes.

    The fitter counts exactly these costs, so when the length is short, mentions and then opening lines
    are left out (at random) until the rest fits; the facts never are."""
    first = Section(chapters[0].header, (Segment(chapters[0].facts[0].text),), lead=True)
    required = frame_overhead(frame, (first,), context.tokenizer, context.chat)
    required += sum(_heading_costs(context.tokenizer, len(chapters)))
    required += sum(c for text in texts for _, c in text.facts)
    spare = context.length - required
    optional = sum(text.lead[1] if text.lead else 0 for text in texts)
    optional += sum(c for text in texts for _, c in text.mentions)
    available = spare - optional - INTERLUDE_TOKENS * len(texts)
    if available > 0:
        weights = [0.6 + 0.8 * rng.random() for _ in texts]
        scale = available / sum(weights)
        return texts, [int(w * scale) for w in weights]
    return _leave_out(texts, spare, rng), [0] * len(texts)


def _leave_out(texts: list[ChapterText], spare: int, rng: random.Random) -> list[ChapterText]:
    """Drop mentions, then opening lines, at random, until they fit in `spare` tokens with a remainder
    the interludes can fill (none, or at least a few tokens)."""
    texts = list(texts)
    optional = [(i, "mention", j) for i, t in enumerate(texts) for j in range(len(t.mentions))]
    rng.shuffle(optional)
    openers = [(i, "lead", 0) for i, t in enumerate(texts) if t.lead is not None]
    rng.shuffle(openers)
    dropped: set[tuple[int, str, int]] = set()
    cost = {(i, "mention", j): c for i, t in enumerate(texts) for j, (_, c) in enumerate(t.mentions)}
    cost.update({(i, "lead", 0): t.lead[1] for i, t in enumerate(texts) if t.lead is not None})
    left = sum(cost.values())
    for item in optional + openers:
        if spare - left == 0 or spare - left >= MIN_INTERLUDE:
            break
        dropped.add(item)
        left -= cost[item]
    for i, text in enumerate(texts):
        mentions = tuple(m for j, m in enumerate(text.mentions) if (i, "mention", j) not in dropped)
        lead = None if (i, "lead", 0) in dropped else text.lead
        texts[i] = replace(text, mentions=mentions, lead=lead)
    return texts


def _heading_costs(tokenizer: LengthTokenizer, count: int) -> list[int]:
    """Tokens of the headings "Chapter 1" ... "Chapter <count>" as the fitter counts them in context."""
    costs: list[int] = tokenizer.memo.setdefault("story_heading_costs", [])
    if len(costs) < count:
        first = len(costs) + 1
        numbers = range(first, max(count, 2 * first) + 1)
        texts = [f"Chapter {n}\n" if n == 1 else f".\n\nChapter {n}\n" for n in numbers]
        dot = tokenizer.count(".")
        counts = tokenizer.count_many(texts)
        costs += [c if n == 1 else c - dot for n, c in zip(numbers, counts, strict=True)]
    return costs[:count]


def _evidence_key(evidence: Evidence, chapters: list[RenderedChapter], texts: list[ChapterText]) -> str:
    """The sentence stating the evidence, or the chapter's first line when the evidence is the chapter
    as a whole."""
    chapter = chapters[evidence.chapter - 1]
    for j, fact in enumerate(chapter.facts):
        if fact.kind == evidence.kind and fact.value == evidence.value:
            return fact_key(chapter.number, j)
    return chapter_key(chapter.number) if texts[evidence.chapter - 1].lead else fact_key(chapter.number, 0)
