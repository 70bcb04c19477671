"""The task registry: the single source of truth for task names, families, lm-eval groups, generation
budgets and per-length metric columns.

Adding a task is one line here (plus its file, templates and card paragraph); adding a family is its
package, its lines here and its card paragraph. Tasks are imported only when first used, so the CLI and
the generic core never import a family they do not need.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Any

from longtasks.task import Task

TASKS: dict[str, str] = {
    "story_retrieval": "longtasks.families.story.retrieval:StoryRetrieval",
    "story_multihop": "longtasks.families.story.multihop:StoryMultihop",
    "story_filtering": "longtasks.families.story.filtering:StoryFiltering",
    "story_inventory": "longtasks.families.story.inventory:StoryInventory",
    "ruler_niah": "longtasks.families.ruler.niah:RulerNiah",
    "ruler_vt": "longtasks.families.ruler.vt:RulerVariableTracking",
    "ruler_cwe": "longtasks.families.ruler.cwe:RulerCommonWords",
    "qa_squad": "longtasks.families.qa.squad:QASquad",
    "qa_quality": "longtasks.families.qa.quality:QAQuality",
    "qa_toefl": "longtasks.families.qa.toefl:QAToefl",
}
"""Task name -> "module:class" of its `Task` subclass. The order is the order tasks are listed in."""


@dataclass(frozen=True)
class Family:
    """A family of tasks sharing a generator: its name (a task-name prefix) and a one-line summary."""

    name: str
    title: str
    summary: str
    data_packages: tuple[str, ...] = ()
    """Packages whose word or name tables the generator draws from: their versions fix the data."""


FAMILIES: dict[str, Family] = {
    "story": Family("story", "Story", "questions about a simulated journey told as a long story", ("faker",)),
    "ruler": Family(
        "ruler",
        "RULER",
        "synthetic key-value retrieval, variable tracking and word counting",
        ("wonderwords",),
    ),
    "qa": Family(
        "qa",
        "QA",
        "questions about one document of a real dataset (SQuAD, QuALITY, TOEFL-QA) among distractor documents",
    ),
}

GROUP_PREFIX = "longtasks_"
ALL_GROUP = "longtasks_all"
STATIC_SUFFIX = "_static"

LENGTH_COLUMNS: tuple[int, ...] = tuple(1024 * 2**k for k in range(11))
"""Lengths (1k ... 1M) that get their own metric column in lm-eval tables; other lengths still get a
column, lm-eval just logs that it used its default aggregation for it."""


@cache
def get_task(name: str) -> Task[Any]:
    """The task called `name`; ValueError naming the available tasks otherwise."""
    try:
        path = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; available tasks: {', '.join(TASKS)}") from None
    module, _, attribute = path.partition(":")
    task = getattr(importlib.import_module(module), attribute)()
    if task.name != name or task.family != name.partition("_")[0]:
        raise RuntimeError(
            f"registry entry {name!r} -> {path} declares name {task.name!r}, family {task.family!r}; a task is named <family>_<what>"
        )
    return task


def list_tasks(family: str | None = None) -> list[str]:
    """Task names (of one family, when given), in registry order."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; families: {', '.join(FAMILIES)}")
    return [name for name in TASKS if family is None or task_family(name) == family]


def task_family(name: str) -> str:
    """A task's family, read from its name prefix (no import): ``ruler_niah`` -> ``ruler``."""
    family = name.partition("_")[0]
    if name not in TASKS or family not in FAMILIES:
        raise ValueError(f"unknown task {name!r}; available tasks: {', '.join(TASKS)}")
    return family


def list_families() -> list[str]:
    return list(FAMILIES)


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown family {name!r}; families: {', '.join(FAMILIES)}") from None


def family_group(family: str) -> str:
    """lm-eval group running a family's tasks: ``longtasks_story``."""
    return f"{GROUP_PREFIX}{family}"


def static_name(name: str) -> str:
    """lm-eval name of the variant that reads an exported dataset: ``story_retrieval_static``."""
    return f"{name}{STATIC_SUFFIX}"


def base_task(name: str) -> str:
    """The task an lm-eval task name runs: ``story_retrieval_static`` -> ``story_retrieval``."""
    return name.removesuffix(STATIC_SUFFIX)


def groups() -> dict[str, list[str]]:
    """Every lm-eval group and its member tasks: one per family, `longtasks_all`, and their static twins."""
    generated = {family_group(f): list_tasks(f) for f in FAMILIES}
    generated[ALL_GROUP] = list_tasks()
    static = {static_name(g): [static_name(t) for t in members] for g, members in generated.items()}
    return {**generated, **static}


def lm_eval_task_names() -> list[str]:
    """Every lm-eval task this package registers (generated and static variants)."""
    return [*TASKS, *(static_name(name) for name in TASKS)]


def gen_budget(name: str) -> int:
    """A task's generation budget (`max_gen_toks`), for a task or its static variant."""
    return get_task(base_task(name)).gen_budget
