"""Tasks by name."""

from __future__ import annotations

from longtasks.tasks.base import StoryTask
from longtasks.tasks.story_filtering import StoryFiltering
from longtasks.tasks.story_inventory import StoryInventory
from longtasks.tasks.story_multihop import StoryMultihop
from longtasks.tasks.story_retrieval import StoryRetrieval

_TASKS: dict[str, StoryTask] = {
    task.name: task for task in (StoryRetrieval(), StoryMultihop(), StoryFiltering(), StoryInventory())
}


def list_tasks() -> list[str]:
    return list(_TASKS)


def get_task(name: str) -> StoryTask:
    try:
        return _TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; available tasks: {', '.join(_TASKS)}") from None
