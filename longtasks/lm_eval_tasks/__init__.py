"""lm-eval task configs for every registered task, shipped inside the package.

The YAML files in this folder are generated from the task registry (`python -m
longtasks.lm_eval_tasks.yaml_files --write`; a test checks they are up to date). Point lm-eval at them with
``--include_path $(python -c "import longtasks.lm_eval_tasks as t; print(t.tasks_dir())")`` or let
``longtasks eval`` do it. This module never imports lm-eval (an optional extra).
"""

from __future__ import annotations

from pathlib import Path


def tasks_dir() -> Path:
    """The folder lm-eval must scan (`include_path`) to find our tasks."""
    return Path(__file__).resolve().parent
