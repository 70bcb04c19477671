"""lm-eval `custom_dataset` functions: build a task's documents from lm-eval metadata.

Each YAML names one function here (``custom_dataset: !function longtasks.lm_eval_tasks.dataset.X``,
resolved as an installed module so it is imported once). lm-eval calls it at task load with the
merged metadata as keyword arguments; it returns ``{"test": datasets.Dataset}`` whose rows are
exactly `Sample.to_row()` of what `longtasks generate` produces for the same settings, all lengths
concatenated, shortest length first (so lm-eval's ``--limit N`` keeps the first N of the shortest).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import datasets

from longtasks.lm_eval_tasks.budget import check_answer_budget
from longtasks.lm_eval_tasks.guard import check_metadata_max_length, special_tokens_added
from longtasks.lm_eval_tasks.options import generation_options, static_options
from longtasks.lm_eval_tasks.static import load_static_rows
from longtasks.tokenizer import load_tokenizer

log = logging.getLogger(__name__)


def generated_rows(task: str, metadata: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of `task` at every requested length, generated in the tokenizer named by the metadata."""
    from longtasks.generate import generate_samples
    from longtasks.tasks.registry import list_tasks

    options = generation_options(task, metadata, list_tasks())
    tokenizer = load_tokenizer(options.tokenizer)
    if options.gen_budget is not None:
        required = max(options.lengths) + options.gen_budget + special_tokens_added(options.tokenizer)
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


def generated_dataset(task: str, metadata: Mapping[str, Any]) -> dict[str, datasets.Dataset]:
    from longtasks.dataset_dir import ROW_SCHEMA

    features = datasets.Features.from_arrow_schema(ROW_SCHEMA)
    return {"test": datasets.Dataset.from_list(generated_rows(task, metadata), features=features)}


def static_dataset(task: str, metadata: Mapping[str, Any]) -> dict[str, datasets.Dataset]:
    options = static_options(task, metadata)
    dataset = load_static_rows(task, options)
    tokenizer_name = options.tokenizer or dataset[0]["tokenizer"]
    if options.gen_budget is not None:
        longest = max(dataset["length"])
        required = longest + options.gen_budget + special_tokens_added(tokenizer_name)
        check_metadata_max_length(task, metadata, required)
    check_answer_budget(task, list(dataset), load_tokenizer(tokenizer_name), options.gen_budget)
    return {"test": dataset}


# One function per task: lm-eval passes only the metadata, so the task name is bound here.
def story_retrieval(**metadata: Any) -> dict[str, datasets.Dataset]:
    return generated_dataset("story_retrieval", metadata)


def story_multihop(**metadata: Any) -> dict[str, datasets.Dataset]:
    return generated_dataset("story_multihop", metadata)


def story_filtering(**metadata: Any) -> dict[str, datasets.Dataset]:
    return generated_dataset("story_filtering", metadata)


def story_inventory(**metadata: Any) -> dict[str, datasets.Dataset]:
    return generated_dataset("story_inventory", metadata)


def story_retrieval_static(**metadata: Any) -> dict[str, datasets.Dataset]:
    return static_dataset("story_retrieval", metadata)


def story_multihop_static(**metadata: Any) -> dict[str, datasets.Dataset]:
    return static_dataset("story_multihop", metadata)


def story_filtering_static(**metadata: Any) -> dict[str, datasets.Dataset]:
    return static_dataset("story_filtering", metadata)


def story_inventory_static(**metadata: Any) -> dict[str, datasets.Dataset]:
    return static_dataset("story_inventory", metadata)
