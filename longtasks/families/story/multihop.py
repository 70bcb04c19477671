"""story_multihop: the paper's "last item acquired before acquiring X", generalised to `hops`."""

from __future__ import annotations

import random
from bisect import bisect_left
from dataclasses import dataclass

from longtasks.depth import parse_depth_mode, target_depths
from longtasks.families.story.prompt import question_text
from longtasks.families.story.task import Evidence, StoryKnobs, StoryTask, TaskQuestions, WorldTooSmall
from longtasks.families.story.world import World


@dataclass(frozen=True)
class MultihopKnobs(StoryKnobs):
    """hops: how many acquisitions back the answer lies (paper: 1). depth: where the asked-about item
    (X) is acquired: 'uniform', 'stratified' or comma-separated depths in [0, 1], one per sample in turn. min_gap: the fewest chapters between
    the answer's purchase and X's (1: never in X's own chapter, so the answer is never the sentence
    next to X's; 0: anywhere, as in the paper)."""

    hops: int = 1
    depth: str = "uniform"
    min_gap: int = 1

    def validate(self) -> None:
        super().validate()
        if self.hops < 1:
            raise ValueError(f"hops={self.hops} must be at least 1")
        if self.min_gap < 0:
            raise ValueError(f"min_gap={self.min_gap} must be 0 or more (chapters)")
        parse_depth_mode(self.depth)


class StoryMultihop(StoryTask[MultihopKnobs]):
    name = "story_multihop"
    description = (
        "Name the item acquired `hops` acquisitions before a given item (chaining purchases across chapters)."
    )
    answer_kind = "text"
    knobs_type = MultihopKnobs
    gen_budget = 256  # room for one item name (<= 15 tokens) after a short explanation

    def min_chapters(self, knobs: MultihopKnobs) -> int:
        return knobs.hops + knobs.min_gap + 2

    def ask(self, world: World, knobs: MultihopKnobs, rng: random.Random, index: int) -> TaskQuestions:
        order = world.purchase_order()
        if len(order) <= knobs.hops:
            raise WorldTooSmall(
                f"the story has only {len(order)} purchases, too few for hops={knobs.hops}; use a longer length"
            )
        # X's positions in purchase order whose answer lies at least `min_gap` chapters back.
        valid = [
            i
            for i in range(knobs.hops, len(order))
            if order[i][1] - order[i - knobs.hops][1] >= knobs.min_gap
        ]
        if not valid:
            raise WorldTooSmall(
                f"no purchase has its {knobs.hops}-back purchase {knobs.min_gap}+ chapters earlier; "
                "use a longer length or a smaller min_gap"
            )
        given = parse_depth_mode(knobs.depth)
        # A list of depths is cycled across samples (one question per sample), like retrieval's per question.
        depth = (
            given[index % len(given)] if isinstance(given, list) else target_depths(knobs.depth, 1, rng)[0]
        )
        # Purchases are spread evenly enough that rank order approximates depth.
        position = valid[min(len(valid) - 1, bisect_left(valid, int(depth * len(order))))]
        item, item_chapter = order[position]
        answer, answer_chapter = order[position - knobs.hops]
        variant = "one" if knobs.hops == 1 else "many"
        question = question_text(
            "multihop", variant, item=item, hops=knobs.hops, protagonist=world.protagonist
        )
        evidence = [Evidence(answer_chapter, "purchase", answer), Evidence(item_chapter, "purchase", item)]
        return TaskQuestions([question], answer, evidence, "name of item")
