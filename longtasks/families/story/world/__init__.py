"""The story world: a seeded state simulator (the truth), its invariants, the jinja2 rendering of
chapters into fact sentences, and the filler bank that pads text to exact lengths."""

from longtasks.families.story.world.filler import filler_sentences
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
    "filler_sentences",
    "simulate_world",
]
