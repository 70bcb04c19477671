"""Python entry points for `lm_eval.simple_evaluate`: a TaskManager that knows our tasks, and the
`max_length` a model needs so that lm-eval never truncates their prompts.

`simple_evaluate(..., task_manager=tm)` ignores its own `metadata=` argument, so the generation settings
travel on the TaskManager built here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from longtasks.lm_eval_tasks import tasks_dir
from longtasks.lm_eval_tasks.guard import (
    generation_budget,
    requested_tasks,
    required_max_length,
)
from longtasks.lm_eval_tasks.options import parse_lengths_value
from longtasks.registry import ALL_GROUP


def task_manager(
    lengths: Sequence[int | str],
    *,
    tokenizer: str | None = None,
    chat: bool = False,
    num_samples: int | None = None,
    seed: int = 0,
    knobs: Mapping[str, Mapping[str, Any]] | None = None,
    include_defaults: bool = True,
    **metadata: Any,
):
    """An lm-eval TaskManager whose tasks generate `num_samples` prompts per length.

    `num_samples=None` leaves it out of the metadata: the generated tasks then make DEFAULT_NUM_SAMPLES (100)
    and the static tasks read every sample the dataset holds, as `longtasks eval --data-path` does (a fixed
    100 would silently cut larger folders and refuse smaller ones).

    `tokenizer` must be the model's (lengths are counted in it); `chat` must match
    `simple_evaluate(apply_chat_template=...)`. `knobs` maps task name -> knob values. Extra keyword
    arguments become metadata too (e.g. ``data_path=`` for the static tasks, ``workers=``).
    `include_defaults=False` skips indexing lm-eval's own ~15k tasks (faster when only ours run).
    """
    from lm_eval.tasks import TaskManager

    values: dict[str, Any] = {
        "max_seq_lengths": list(parse_lengths_value(list(lengths))),
        "chat": chat,
        "seed": seed,
        **metadata,
    }
    if num_samples is not None:
        values["num_samples"] = num_samples
    if tokenizer is not None:
        values["tokenizer"] = tokenizer
    if knobs:
        values["knobs"] = {task: dict(v) for task, v in knobs.items()}
    return TaskManager(include_path=str(tasks_dir()), include_defaults=include_defaults, metadata=values)


def max_length_for(
    lengths: Iterable[int | str],
    tasks: Iterable[str] = (ALL_GROUP,),
    *,
    tokenizer: str | None = None,
    max_gen_toks: int | None = None,
) -> int:
    """The `max_length` a model needs for these tasks: longest prompt (special tokens included) + generation
    budget. Pass it in `model_args`. `tokenizer` no longer changes the result (a prompt's length already
    counts the BOS its tokenizer adds); it is accepted so that existing calls keep working."""
    names = requested_tasks(tasks)
    if not names:
        raise ValueError(
            f"no longtasks task among {list(tasks)}; use e.g. {ALL_GROUP!r} or 'story_retrieval'"
        )
    budget = generation_budget(names, {"max_gen_toks": max_gen_toks} if max_gen_toks else None)
    longest = max(parse_lengths_value(list(lengths)))
    return required_max_length(longest, budget)
