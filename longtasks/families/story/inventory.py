"""story_inventory: the protagonist's final inventory as a set — depends on every purchase and sale."""

from __future__ import annotations

import random
from dataclasses import dataclass

from longtasks.families.story.prompt import question_text
from longtasks.families.story.task import Evidence, StoryKnobs, StoryTask, TaskQuestions
from longtasks.families.story.world import World, WorldConfig


@dataclass(frozen=True)
class InventoryKnobs(StoryKnobs):
    """sale_probability: the share of purchases sold again before the end (each is sold in a random later
    chapter); the rest, drawn uniformly from the whole story, is the final inventory, so its items lie
    anywhere in the story and "the last few purchases" is no shortcut. max_owned: the most items the
    final inventory holds (0 = no cap), so the answer stays short at any length."""

    sale_probability: float = 0.9
    max_owned: int = 10

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.sale_probability <= 1.0:
            raise ValueError(f"sale_probability={self.sale_probability} must be within [0, 1]")
        if self.max_owned < 0:
            raise ValueError(f"max_owned={self.max_owned} must be 0 (no cap) or positive")


class StoryInventory(StoryTask[InventoryKnobs]):
    name = "story_inventory"
    description = "List every item the protagonist still owns at the end (bought and not sold afterwards)."
    answer_kind = "set"
    knobs_type = InventoryKnobs
    gen_budget = (
        256  # room for <= max_owned items (default 10: <= 62 tokens measured up to 1M) + a short explanation
    )

    def world_config(self, knobs: InventoryKnobs, num_chapters: int, rng: random.Random) -> WorldConfig:
        return WorldConfig(kept_share=1.0 - knobs.sale_probability, max_kept=knobs.max_owned)

    def min_chapters(self, knobs: InventoryKnobs) -> int:
        return 3  # the last chapter buys nothing

    def ask(self, world: World, knobs: InventoryKnobs, rng: random.Random, index: int) -> TaskQuestions:
        owned = world.final_inventory()
        # In purchase order (never set order, which depends on the interpreter's string hashing).
        kept = [(item, chapter) for item, chapter in world.purchase_order() if item in owned]
        answer = [item for item, _ in kept]
        evidence = [Evidence(chapter, "purchase", item) for item, chapter in kept]
        question = question_text("inventory", "one", protagonist=world.protagonist)
        return TaskQuestions([question], answer, evidence, "first item, second item, ...")
