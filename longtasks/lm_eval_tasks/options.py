"""Read lm-eval metadata into typed settings for one task.

lm-eval hands a task's `custom_dataset` function one flat dict: the YAML's `metadata`, the model
arguments (`pretrained`, `dtype`, `max_length`, ...) and the user's `--metadata`, merged. Only the
keys below mean something to us; everything else is ignored, so model arguments never break a task.

Keys: ``max_seq_lengths`` (lengths, e.g. ``[4096, 8192]``, ``"4k,8k"``), ``tokenizer`` / ``pretrained``
/ ``model`` (the tokenizer lengths are measured in, first non-empty string wins, as in lm-eval's
RULER port), ``num_samples`` (per length, default 100), ``seed`` (default 0), ``knobs`` (a mapping
of knob values, or of task name -> knob values; JSON text also works), ``chat`` (the prompt will be
wrapped in the tokenizer's chat template: set it together with ``--apply_chat_template``),
``workers`` (generation processes), ``progress`` (show generation progress), ``gen_budget`` (the
task's `max_gen_toks`, from its YAML: every gold answer must fit it), and for the static variants
``data_path`` / ``dataset`` (an exported folder or a Hub dataset id).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from longtasks.lengths import parse_length, parse_lengths

log = logging.getLogger(__name__)

DEFAULT_NUM_SAMPLES = 100
"""Samples per length when the user gives none: the seed paper's setting."""

TOKENIZER_KEYS = ("tokenizer", "pretrained", "model")
"""Metadata keys that can name the tokenizer, in priority order (`model` is what API backends use)."""

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


@dataclass(frozen=True)
class GenerationOptions:
    """What the on-the-fly variant of one task generates."""

    lengths: tuple[int, ...]
    tokenizer: str | None
    num_samples: int
    seed: int
    knobs: dict[str, Any]
    chat: bool
    workers: int
    progress: bool
    gen_budget: int | None


@dataclass(frozen=True)
class StaticOptions:
    """What the static variant of one task reads; None means "whatever the dataset holds"."""

    source: str
    lengths: tuple[int, ...] | None
    num_samples: int | None
    chat: bool | None
    tokenizer: str | None
    gen_budget: int | None


def parse_lengths_value(value: Any) -> tuple[int, ...]:
    """Lengths from metadata, sorted ascending and de-duplicated (lm-eval's `--limit` takes the first
    documents, so the shortest lengths come first)."""
    if isinstance(value, bool):
        raise ValueError(f"max_seq_lengths={value!r} is not a length: give e.g. [4096, 8192] or '4k,8k'")
    if isinstance(value, int):
        lengths = [parse_length(value)]
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return parse_lengths_value(json.loads(text))
        lengths = parse_lengths(text)
    elif isinstance(value, (list, tuple)):
        if not value:
            raise ValueError("max_seq_lengths is empty: give at least one length, e.g. [4096]")
        lengths = [parse_length(item) for item in value]
    else:
        raise ValueError(f"max_seq_lengths={value!r} is not a length list: give e.g. [4096, 8192] or '4k,8k'")
    return tuple(sorted(set(lengths)))


def parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{name}={value!r} is not a boolean: use true or false")


def parse_int(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueError(f"{name}={value!r} is not an integer") from None
    if not isinstance(value, int):
        raise ValueError(f"{name}={value!r} is not an integer")
    if value < minimum:
        raise ValueError(f"{name}={value} is too small: it must be at least {minimum}")
    return value


def tokenizer_name(metadata: Mapping[str, Any]) -> str | None:
    """The tokenizer named in metadata (`tokenizer`, else `pretrained`, else `model`), or None.

    Non-string values (a model object passed to lm-eval in Python) are skipped.
    """
    for key in TOKENIZER_KEYS:
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def task_knobs(task: str, value: Any, task_names: list[str]) -> dict[str, Any]:
    """The knob values for `task` from the metadata `knobs` entry.

    A mapping keyed by task names gives each task its own knobs (needed when a group runs several
    tasks); any other mapping applies to `task` as is.
    """
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"knobs={value!r} is not valid JSON: {error}") from None
    if not isinstance(value, Mapping):
        raise ValueError(f'knobs={value!r} must be a mapping, e.g. {{"num_questions": 4}}')
    keyed_by_task = [key for key in value if key in task_names]
    if keyed_by_task and len(keyed_by_task) != len(value):
        others = sorted(set(value) - set(keyed_by_task))
        raise ValueError(
            f"knobs mixes task names {sorted(keyed_by_task)} with knob names {others}: give either "
            f'one mapping of knobs or a mapping of task name -> knobs, e.g. {{"{task}": {{...}}}}'
        )
    if keyed_by_task:
        per_task = value.get(task) or {}
        if not isinstance(per_task, Mapping):
            raise ValueError(f"knobs for {task!r} must be a mapping, got {per_task!r}")
        return dict(per_task)
    return dict(value)


def gen_budget(metadata: Mapping[str, Any]) -> int | None:
    """The generation budget the task YAML declares (`gen_budget`, kept equal to `max_gen_toks`)."""
    value = metadata.get("gen_budget")
    return None if value is None else parse_int("gen_budget", value, minimum=1)


def generation_options(task: str, metadata: Mapping[str, Any], task_names: list[str]) -> GenerationOptions:
    """Typed settings for generating `task`; clear errors for missing or ill-typed values."""
    if metadata.get("max_seq_lengths") in (None, "", []):
        raise ValueError(
            f"{task}: no lengths given. Pass them as lm-eval metadata, e.g. "
            "--metadata '{\"max_seq_lengths\": [4096, 8192]}', or run `longtasks eval --lengths 4k,8k ...`"
        )
    tokenizer = tokenizer_name(metadata)
    if tokenizer is None:
        log.warning(
            "%s: no tokenizer in metadata (tokenizer/pretrained/model); measuring lengths with the "
            "built-in qwen2.5 tokenizer. Pass the model's tokenizer if it differs.",
            task,
        )
    return GenerationOptions(
        lengths=parse_lengths_value(metadata["max_seq_lengths"]),
        tokenizer=tokenizer,
        num_samples=parse_int("num_samples", metadata.get("num_samples", DEFAULT_NUM_SAMPLES), minimum=1),
        seed=parse_int("seed", metadata.get("seed", 0), minimum=0),
        knobs=task_knobs(task, metadata.get("knobs"), task_names),
        chat=parse_bool("chat", metadata.get("chat", False)),
        workers=parse_int("workers", metadata.get("workers", 1), minimum=1),
        progress=parse_bool("progress", metadata.get("progress", False)),
        gen_budget=gen_budget(metadata),
    )


def static_options(task: str, metadata: Mapping[str, Any]) -> StaticOptions:
    """Typed settings for reading `task` from an exported dataset."""
    source = metadata.get("data_path") or metadata.get("dataset")
    if not isinstance(source, str) or not source.strip():
        raise ValueError(
            f"{task}: the static variant needs the dataset to read: pass --metadata "
            "data_path=DIR (a folder written by `longtasks generate --out DIR`) or dataset=OWNER/NAME "
            "(a Hub dataset id), or run `longtasks eval --data-path ...`"
        )
    lengths = metadata.get("max_seq_lengths")
    num_samples = metadata.get("num_samples")
    chat = metadata.get("chat")
    return StaticOptions(
        source=source.strip(),
        lengths=None if lengths in (None, "", []) else parse_lengths_value(lengths),
        num_samples=None if num_samples is None else parse_int("num_samples", num_samples, minimum=1),
        chat=None if chat is None else parse_bool("chat", chat),
        tokenizer=tokenizer_name(metadata),
        gen_budget=gen_budget(metadata),
    )
