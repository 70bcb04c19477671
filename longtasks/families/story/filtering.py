"""story_filtering: the paper's aggregation task — which chapters have no purchase."""

from __future__ import annotations

import random
from dataclasses import dataclass

from longtasks.families.story.prompt import question_text
from longtasks.families.story.task import Evidence, StoryKnobs, StoryTask, TaskQuestions
from longtasks.families.story.world import World, WorldConfig


@dataclass(frozen=True)
class FilteringKnobs(StoryKnobs):
    """num_empty: chapters without any purchase (paper: 3); every other chapter has one or two.
    The world is simulated with them (items are never sold before being bought), unlike the seed,
    which deleted purchases after the fact."""

    num_empty: int = 3

    def validate(self) -> None:
        super().validate()
        if self.num_empty < 1:
            raise ValueError(f"num_empty={self.num_empty} must be at least 1")


class StoryFiltering(StoryTask[FilteringKnobs]):
    name = "story_filtering"
    description = "List the chapters in which the protagonist bought nothing (all others have purchases)."
    answer_kind = "int_set"
    knobs_type = FilteringKnobs
    gen_budget = 256  # room for a few chapter numbers (<= 20 tokens) after a short explanation

    def min_chapters(self, knobs: FilteringKnobs) -> int:
        return knobs.num_empty + 2

    def world_config(self, knobs: FilteringKnobs, num_chapters: int, rng: random.Random) -> WorldConfig:
        empty = frozenset(rng.sample(range(1, num_chapters + 1), knobs.num_empty))
        return WorldConfig(empty_chapters=empty)

    def ask(self, world: World, knobs: FilteringKnobs, rng: random.Random, index: int) -> TaskQuestions:
        empty = sorted(c.number for c in world.chapters if not c.purchases)
        question = question_text("filtering", "one", protagonist=world.protagonist)
        return TaskQuestions(
            [question],
            empty,
            [Evidence(c) for c in empty],
            "first chapter number, second chapter number, ...",
        )
