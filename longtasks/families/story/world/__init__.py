"""The story world: a seeded state simulator (the truth), its invariants, the jinja2 rendering of
chapters into fact sentences, the scenery that fits each chapter and the mentions (confusers)."""

from longtasks.families.story.world.invariants import check_world
from longtasks.families.story.world.render import FactSentence, RenderedChapter, StoryRenderer
from longtasks.families.story.world.simulator import (
    Chapter,
    InventoryHistory,
    World,
    WorldConfig,
    simulate_world,
)

__all__ = [
    "Chapter",
    "FactSentence",
    "InventoryHistory",
    "RenderedChapter",
    "StoryRenderer",
    "World",
    "WorldConfig",
    "check_world",
    "simulate_world",
]
