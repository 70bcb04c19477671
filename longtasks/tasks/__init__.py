"""Story tasks: retrieval, multi-hop, filtering and inventory aggregation."""

from longtasks.tasks.base import Evidence, StoryKnobs, StoryTask, TaskQuestions
from longtasks.tasks.registry import get_task, list_tasks

__all__ = ["Evidence", "StoryKnobs", "StoryTask", "TaskQuestions", "get_task", "list_tasks"]
