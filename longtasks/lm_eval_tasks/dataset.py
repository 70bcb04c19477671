"""lm-eval `custom_dataset` functions: build a task's documents from lm-eval metadata.

Every task YAML names one of the two functions here (``custom_dataset: !function
longtasks.lm_eval_tasks.dataset.generated`` or ``.static``, resolved as an installed module so it is
imported once) and says which task it is in its metadata (``longtasks_task``). lm-eval calls the function
at task load with the merged metadata as keyword arguments; it returns ``{"test": datasets.Dataset}``
whose rows are exactly `Sample.to_row()` of what `longtasks generate` produces for the same settings, all
lengths concatenated, shortest length first (so lm-eval's ``--limit N`` keeps the first N of the shortest).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import datasets

from longtasks.lm_eval_tasks.budget import check_answer_budget
from longtasks.lm_eval_tasks.guard import check_metadata_max_length, required_max_length
from longtasks.lm_eval_tasks.options import generation_options, static_options
from longtasks.lm_eval_tasks.static import load_static_rows, unloadable_data_tokenizer
from longtasks.tokenizer import load_tokenizer

log = logging.getLogger(__name__)


def generated_rows(task: str, metadata: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of `task` at every requested length, generated in the tokenizer named by the metadata."""
    from longtasks.generation import generate_samples
    from longtasks.registry import list_tasks

    options = generation_options(task, metadata, list_tasks())
    tokenizer = load_tokenizer(options.tokenizer)
    check_model_tokenizer(task, metadata, tokenizer)
    if options.gen_budget is not None:
        required = required_max_length(max(options.lengths), options.gen_budget)
        check_metadata_max_length(task, metadata, required)
    rows: list[dict[str, Any]] = []
    for length in options.lengths:
        log.info(
            "%s: generating %d samples of %d tokens (seed %d, chat=%s)",
            task, options.num_samples, length, options.seed, options.chat,
        )  # fmt: skip
        samples = generate_samples(
            task,
            length,
            options.num_samples,
            seed=options.seed,
            tokenizer=options.tokenizer,
            chat=options.chat,
            knobs=options.knobs,
            workers=options.workers,
            progress=options.progress,
        )
        rows.extend(sample.to_row() for sample in samples)
    check_answer_budget(task, rows, tokenizer, options.gen_budget)
    return rows


def check_model_tokenizer(task: str, metadata: Mapping[str, Any], tokenizer: Any) -> None:
    """A `tokenizer` in the metadata that encodes differently from the model's (`pretrained`) would make every
    prompt the wrong length for the model: refuse it (lm-eval's model encodes with its own tokenizer)."""
    from longtasks.tiktoken_bridge import PROBES

    model = metadata.get("pretrained")
    if not isinstance(model, str) or not model or model == tokenizer.name:
        return
    try:
        model_tokenizer = load_tokenizer(model)
    except ValueError:
        return  # not a loadable tokenizer name (e.g. an API model): lengths follow the given tokenizer
    if any(model_tokenizer.encode(probe) != tokenizer.encode(probe) for probe in PROBES):
        raise ValueError(
            f"{task}: the tokenizer {tokenizer.name!r} given in the metadata encodes text differently from the "
            f"model's ({model!r}), so prompts would not have their length for the model; drop the tokenizer "
            "setting or give the model's own"
        )


def generated_dataset(task: str, metadata: Mapping[str, Any]) -> dict[str, datasets.Dataset]:
    from longtasks.sample import row_schema

    features = datasets.Features.from_arrow_schema(row_schema())
    return {"test": datasets.Dataset.from_list(generated_rows(task, metadata), features=features)}


def _static_tokenizer(task: str, given: str | None, stored: str) -> Any:
    """The run's tokenizer, else the one the data names (which may only resolve where it was made)."""
    if given is not None:
        return load_tokenizer(given)
    try:
        return load_tokenizer(stored)
    except ValueError as error:
        raise unloadable_data_tokenizer(task, stored, error) from error


def static_dataset(task: str, metadata: Mapping[str, Any]) -> dict[str, datasets.Dataset]:
    options = static_options(task, metadata)
    dataset = load_static_rows(task, options)
    tokenizer = _static_tokenizer(task, options.tokenizer, dataset[0]["tokenizer"])
    if options.gen_budget is not None:
        longest = max(dataset["length"])
        required = required_max_length(longest, options.gen_budget)
        check_metadata_max_length(task, metadata, required)
    check_answer_budget(task, list(dataset), tokenizer, options.gen_budget)
    return {"test": dataset}


TASK_KEY = "longtasks_task"
"""The metadata key (set in each task's YAML) naming the task a document set is made for."""


def task_from_metadata(metadata: Mapping[str, Any]) -> str:
    """The task named in the YAML's metadata; a clear error when lm-eval did not pass it."""
    from longtasks.registry import TASKS

    task = metadata.get(TASK_KEY)
    if task not in TASKS:
        raise ValueError(
            f"lm-eval metadata names task {task!r} under {TASK_KEY!r}; expected one of {', '.join(TASKS)}. "
            "Use the YAML files shipped in longtasks.lm_eval_tasks (do not override this key in --metadata)"
        )
    return str(task)


def generated(**metadata: Any) -> dict[str, datasets.Dataset]:
    """Documents of the task named in the metadata, generated at the requested lengths."""
    return generated_dataset(task_from_metadata(metadata), metadata)


def static(**metadata: Any) -> dict[str, datasets.Dataset]:
    """Documents of the task named in the metadata, read from an exported dataset."""
    return static_dataset(task_from_metadata(metadata), metadata)
