"""story_retrieval: k questions about what happened in given chapters (location, character, item bought)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from longtasks.depth import chapter_at_depth, parse_depth_mode, target_depths
from longtasks.families.story.prompt import question_text
from longtasks.families.story.task import Evidence, StoryKnobs, StoryTask, TaskQuestions, WorldTooSmall
from longtasks.families.story.world import World

QUESTION_KINDS = ("location", "character", "purchase")


@dataclass(frozen=True)
class RetrievalKnobs(StoryKnobs):
    """num_questions: questions per sample (paper: 16). kinds: comma-separated subset of
    location,character,purchase. depth: 'uniform', 'stratified' or comma-separated depths in [0, 1]."""

    num_questions: int = 16
    kinds: str = "location,character,purchase"
    depth: str = "uniform"

    def validate(self) -> None:
        super().validate()
        if self.num_questions < 1:
            raise ValueError(f"num_questions={self.num_questions} must be at least 1")
        bad = [k for k in self.kind_list() if k not in QUESTION_KINDS]
        twice = len(set(self.kind_list())) < len(self.kind_list())
        if bad or twice or not self.kind_list():
            raise ValueError(
                f"kinds={self.kinds!r} is invalid: use a comma-separated subset of {QUESTION_KINDS}, each "
                "kind once"
            )
        parse_depth_mode(self.depth)

    def kind_list(self) -> list[str]:
        return [k.strip() for k in self.kinds.split(",") if k.strip()]


class StoryRetrieval(StoryTask[RetrievalKnobs]):
    name = "story_retrieval"
    description = "Answer k questions about where the protagonist was, whom they met and what they bought in given chapters."
    answer_kind = "list"
    knobs_type = RetrievalKnobs
    gen_budget = 512  # room for 16 answers (measured: <= 110 tokens) after a short explanation

    def min_chapters(self, knobs: RetrievalKnobs) -> int:
        # Enough distinct (chapter, kind) pairs for every question.
        return max(2, -(-knobs.num_questions // len(knobs.kind_list())) + 1)

    def ask(self, world: World, knobs: RetrievalKnobs, rng: random.Random, index: int) -> TaskQuestions:
        n = len(world.chapters)
        kinds = knobs.kind_list()
        used: set[tuple[int, str]] = set()
        questions, answers, evidence = [], [], []
        for depth in target_depths(knobs.depth, knobs.num_questions, rng):
            picked = self._pick(world, kinds, chapter_at_depth(depth, n), used, rng)
            if picked is None:
                raise WorldTooSmall(
                    f"the story has too few chapters ({n}) to ask {knobs.num_questions} distinct questions "
                    f"of kind(s) {', '.join(kinds)} (a purchase question needs a chapter with exactly one "
                    "purchase); use fewer questions, more kinds or a longer length"
                )
            chapter_number, kind = picked
            used.add((chapter_number, kind))
            chapter = world.chapters[chapter_number - 1]
            value = {"location": chapter.location, "character": chapter.character}.get(
                kind
            ) or chapter.purchases[0]
            questions.append(
                question_text("retrieval", kind, chapter=chapter_number, protagonist=world.protagonist)
            )
            answers.append(value)
            evidence.append(Evidence(chapter_number, kind, value))
        example = "\n".join(f"answer to question {i + 1}" for i in range(min(3, len(questions))))
        if len(questions) > 3:
            example += "\n..."
        return TaskQuestions(questions, answers, evidence, example)

    @staticmethod
    def _pick(
        world: World, kinds: list[str], near: int, used: set[tuple[int, str]], rng: random.Random
    ) -> tuple[int, str] | None:
        """The unused (chapter, kind) pair closest to chapter `near` (None when none is left); a purchase
        question needs a chapter with exactly one purchase so that the answer is unique."""
        n = len(world.chapters)
        for distance in range(n):
            for chapter_number in {near - distance, near + distance}:
                if not 1 <= chapter_number <= n:
                    continue
                chapter = world.chapters[chapter_number - 1]
                options = [
                    k
                    for k in kinds
                    if (chapter_number, k) not in used and (k != "purchase" or len(chapter.purchases) == 1)
                ]
                if options:
                    return chapter_number, options[rng.randrange(len(options))]
        return None
