"""lm-eval task configs for the story tasks, shipped inside the package.

The YAML files in this folder are lm-eval tasks; point lm-eval at them with
``--include_path $(python -c "import longtasks.lm_eval_tasks as t; print(t.tasks_dir())")`` or let
``longtasks eval`` do it. This module never imports lm-eval (an optional extra).
"""

from __future__ import annotations

from pathlib import Path

GROUP = "longtasks_story"
"""Group running every story task, generated on the fly."""

STATIC_GROUP = "longtasks_story_static"
"""Group running every story task from an exported dataset (local folder or Hub)."""

STATIC_SUFFIX = "_static"


def tasks_dir() -> Path:
    """The folder lm-eval must scan (`include_path`) to find our tasks."""
    return Path(__file__).resolve().parent


def static_name(task: str) -> str:
    """lm-eval name of the static variant of a story task: ``story_retrieval_static``."""
    return f"{task}{STATIC_SUFFIX}"


def base_task(name: str) -> str:
    """The story task an lm-eval task name runs: ``story_retrieval_static`` -> ``story_retrieval``."""
    return name.removesuffix(STATIC_SUFFIX)
