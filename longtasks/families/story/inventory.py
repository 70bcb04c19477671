"""story_inventory: the protagonist's final inventory as a set — depends on every purchase and sale."""

from __future__ import annotations

import random
from dataclasses import dataclass

from longtasks.families.story.prompt import question_text
from longtasks.families.story.task import Evidence, StoryKnobs, StoryTask, TaskQuestions
from longtasks.families.story.world import World, WorldConfig


@dataclass(frozen=True)
class InventoryKnobs(StoryKnobs):
    """sale_probability: chance that a chapter sells one owned item. High by default so the final
    inventory stays a short list even in a 1M-token story, while the items in it were bought
    anywhere in the story."""

    sale_probability: float = 0.9

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.sale_probability <= 1.0:
            raise ValueError(f"sale_probability={self.sale_probability} must be within [0, 1]")


class StoryInventory(StoryTask[InventoryKnobs]):
    name = "story_inventory"
    description = "List every item the protagonist still owns at the end (bought and not sold afterwards)."
    answer_kind = "set"
    knobs_type = InventoryKnobs
    gen_budget = 1024  # room for the final inventory, which grows with the story (measured: <= 90 tokens at 32k, <= 370 at 128k)

    def world_config(self, knobs: InventoryKnobs, num_chapters: int, rng: random.Random) -> WorldConfig:
        return WorldConfig(sale_probability=knobs.sale_probability)

    def ask(self, world: World, knobs: InventoryKnobs, rng: random.Random) -> TaskQuestions:
        owned = world.final_inventory()
        # In purchase order (never set order, which depends on the interpreter's string hashing).
        kept = [(item, chapter) for item, chapter in world.purchase_order() if item in owned]
        answer = [item for item, _ in kept]
        evidence = [Evidence(chapter, "purchase", item) for item, chapter in kept]
        question = question_text("inventory", "one", protagonist=world.protagonist)
        return TaskQuestions([question], answer, evidence, "first item, second item")
