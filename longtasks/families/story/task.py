"""What a story task is: typed knobs with the paper's defaults, the questions it asks of a simulated
world, and how world + questions become a draft (chapters as sections, fact sentences as segments)."""

from __future__ import annotations

import random
from abc import abstractmethod
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from longtasks.draft import Draft, Section, Segment
from longtasks.families.story.prompt import story_frame
from longtasks.families.story.world import (
    RenderedChapter,
    StoryRenderer,
    World,
    WorldConfig,
    filler_sentences,
    simulate_world,
)
from longtasks.filler_bank import SharedBank
from longtasks.task import BuildContext, Knobs, Redraw, Task

SCENERY = SharedBank("story", filler_sentences)
"""Scenery sentences that state nothing a question can ask about."""


@dataclass(frozen=True)
class StoryKnobs(Knobs):
    """Knobs every story task shares.

    chapter_tokens: average tokens per chapter; the chapter count grows with the length (a 1M-token
        story has thousands of chapters). num_chapters: fix the chapter count instead (0 = automatic).
    """

    chapter_tokens: int = 300
    num_chapters: int = 0

    def validate(self) -> None:
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
    """The simulated world and its rendered chapters (for checks; never stored)."""

    world: World
    chapters: list[RenderedChapter]


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
    def ask(self, world: World, knobs: SK, rng: random.Random) -> TaskQuestions:
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
        world = simulate_world(scale, rng.getrandbits(63), self.world_config(knobs, scale, rng))
        asked = self.ask(world, knobs, rng)
        renderer = _renderer()
        chapters = [renderer.render_chapter(world, chapter, rng) for chapter in world.chapters]
        sections = tuple(
            Section(
                chapter.header,
                tuple(Segment(fact.text, _key(chapter.number, j)) for j, fact in enumerate(chapter.facts)),
                lead=True,
            )
            for chapter in chapters
        )
        return Draft(
            frame=story_frame(world.protagonist, asked.questions, self.answer_kind, asked.example),
            sections=sections,
            filler=SCENERY,
            question="\n".join(asked.questions),
            answer=asked.answer,
            evidence=tuple(_evidence_key(e, chapters) for e in asked.evidence),
            meta=StoryMeta([e.chapter for e in asked.evidence], scale),
            truth=StoryTruth(world, chapters),
        )


def _key(chapter: int, fact: int) -> str:
    return f"chapter{chapter}.fact{fact}"


def _evidence_key(evidence: Evidence, chapters: list[RenderedChapter]) -> str:
    """The sentence stating the evidence, or the chapter's first sentence when the evidence is the
    chapter as a whole."""
    chapter = chapters[evidence.chapter - 1]
    for j, fact in enumerate(chapter.facts):
        if fact.kind == evidence.kind and fact.value == evidence.value:
            return _key(chapter.number, j)
    return _key(chapter.number, 0)
