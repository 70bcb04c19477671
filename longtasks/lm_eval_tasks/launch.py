"""Run lm-eval's own command line with our tasks wired in (what `longtasks eval` does).

The user's arguments are parsed by lm-eval's parser, then three things change before lm-eval runs:
our task folder joins `--include_path`; the generation settings join `--metadata` (`chat` follows
`--apply_chat_template`); and the model's `max_length` is set from the task lengths plus the
generation budget, or the run stops because the user's value would truncate prompts.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from longtasks.lm_eval_tasks import tasks_dir
from longtasks.lm_eval_tasks.guard import (
    LengthGuardError,
    check_model_type_args,
    generation_budget,
    guard_model_args,
    requested_tasks,
    required_max_length,
    user_generation_budget,
)
from longtasks.lm_eval_tasks.options import DEFAULT_NUM_SAMPLES, parse_bool, parse_int
from longtasks.registry import STATIC_SUFFIX, base_task

log = logging.getLogger(__name__)

MODEL_PLUGINS = ("sparse_eval.lm_eval_model",)
"""Packages imported before lm-eval resolves `--model`, so the model types they register (e.g.
`sparse-hf`) exist. Missing ones (an uninstalled extra) are skipped."""


OPTIONAL_MODULES = {"torch", "sparse_eval"}
"""Missing modules that mean "extra not installed" (the plugin is skipped); any other import error is a bug
and surfaces."""


class EvalUsageError(ValueError):
    """The combination of `longtasks eval` and lm-eval arguments cannot give exact-length prompts."""


@dataclass(frozen=True)
class TaskSettings:
    """What `longtasks eval` adds to lm-eval's metadata; None = not given (lm-eval metadata or the
    task defaults apply)."""

    lengths: tuple[int, ...] | None = None
    num_samples: int | None = None
    seed: int | None = None
    knobs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    data_path: str | None = None
    workers: int | None = None
    progress: bool = True


def import_model_plugins() -> list[str]:
    """Import the packages that register extra lm-eval model types; return those that loaded.

    lm-eval fills its built-in model table only when that table is empty at the first lookup, so
    its models are imported first: a plugin registered before them would hide `hf` & co.
    """
    import lm_eval.models  # noqa: F401

    loaded = []
    for name in MODEL_PLUGINS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name not in OPTIONAL_MODULES:
                raise
            log.debug("model plugin %s not available: %s", name, error)
            continue
        loaded.append(name)
    return loaded


def parse_lm_eval_args(argv: Sequence[str]) -> tuple[Any, argparse.Namespace]:
    """lm-eval's CLI object and its parse of `argv` (lm-eval's own rules, incl. the implicit `run`)."""
    from lm_eval._cli.harness import HarnessCLI

    cli = HarnessCLI()
    saved = sys.argv
    sys.argv = ["lm-eval", *argv]
    try:
        args = cli.parse_args()
    finally:
        sys.argv = saved
    return cli, args


def _merge_metadata(user: Mapping[str, Any], ours: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(user)
    for key, value in ours.items():
        if key in merged and merged[key] != value:
            raise EvalUsageError(
                f"{key} is given twice, as {merged[key]!r} in --metadata and as {value!r} by a "
                "longtasks eval option; keep one"
            )
        merged[key] = value
    return merged


def _lengths_for_guard(tasks: list[str], metadata: Mapping[str, Any]) -> list[int]:
    from longtasks.lm_eval_tasks.options import parse_lengths_value, static_options
    from longtasks.lm_eval_tasks.static import available_lengths

    if metadata.get("max_seq_lengths") not in (None, "", []):
        return list(parse_lengths_value(metadata["max_seq_lengths"]))
    static = [task for task in tasks if task.endswith(STATIC_SUFFIX)]
    if len(static) != len(tasks):
        raise EvalUsageError(
            "give the lengths to generate: --lengths 4k,32k (or max_seq_lengths in --metadata)"
        )
    lengths: set[int] = set()
    for task in static:
        options = static_options(task, metadata)
        lengths.update(available_lengths(options.source, base_task(task)))
    return sorted(lengths)


def lengths_within_limit(limit: float, lengths: Sequence[int], num_samples: int) -> list[int]:
    """The lengths lm-eval's ``--limit`` reaches: it keeps each task's first documents (a count, or a
    fraction below 1), and documents come shortest length first, `num_samples` per length."""
    total = num_samples * len(lengths)
    kept = math.ceil(total * limit) if limit < 1.0 else int(limit)
    return list(lengths[: math.ceil(min(kept, total) / num_samples)])


def warn_about_limit(
    limit: float | None, lengths: Sequence[int], metadata: Mapping[str, Any], *, static: bool = False
) -> None:
    if not limit:
        return
    if static:  # the rows per length are whatever the dataset holds: say what --limit does, not which lengths
        log.warning(
            "--limit %s keeps the first rows of each task, shortest lengths first, so longer lengths may not "
            "be evaluated; the per-length columns show which were",
            limit,
        )
        return
    num_samples = parse_int("num_samples", metadata.get("num_samples", DEFAULT_NUM_SAMPLES), minimum=1)
    reached = lengths_within_limit(limit, sorted(lengths), num_samples)
    if len(reached) < len(lengths):
        log.warning(
            "--limit %s keeps the first samples of each task, so only length(s) %s are evaluated "
            "(of %s); use --num-samples to evaluate fewer samples at every length",
            limit, reached, sorted(lengths),
        )  # fmt: skip


def cache_per_model_args(path: str, model_args: Mapping[str, Any]) -> str:
    """lm-eval's `--use_cache` answers a request it has seen from its cache, keyed by the request alone: runs
    of one model with another sparse method or compression would silently get this run's outputs. Each set of
    model args gets its own cache beside the path the user gave."""
    key = json.dumps(sorted((str(k), str(v)) for k, v in model_args.items()))
    method = str(model_args.get("method", "dense"))
    cache = f"{path}-{method}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    log.info("longtasks: --use_cache %s holds runs of these model args only: %s", path, cache)
    return cache


def prepare_run(args: argparse.Namespace, settings: TaskSettings) -> argparse.Namespace:
    """Wire our tasks into parsed `lm-eval run` arguments (changes and returns `args`)."""
    include = getattr(args, "include_path", None)
    ours = str(tasks_dir())
    args.include_path = ours if not include or include == ours else [include, ours]

    tasks = requested_tasks(getattr(args, "tasks", None) or [])
    if not tasks:
        log.warning("no longtasks task among --tasks %s; running lm-eval unchanged", args.tasks)
        return args

    chat_flag = getattr(args, "apply_chat_template", False)
    if isinstance(chat_flag, str):
        raise EvalUsageError(
            f"--apply_chat_template {chat_flag!r}: the prompts are sized with the tokenizer's "
            "default chat template; use --apply_chat_template without a template name"
        )
    if getattr(args, "system_instruction", None):
        raise EvalUsageError(
            "--system_instruction adds tokens to every prompt, so prompts would exceed their exact length; drop it"
        )
    cache = getattr(args, "cache_requests", None) or {}
    if cache.get("cache_requests") and not cache.get("rewrite_requests_cache"):
        raise EvalUsageError(
            "--cache_requests true reloads requests cached under a key that ignores longtasks' lengths, "
            "num_samples, seed and knobs, so a changed setting would silently evaluate the old prompts; drop it "
            "(samples are regenerated deterministically) or use --cache_requests refresh"
        )
    ours_meta: dict[str, Any] = {"chat": bool(chat_flag)}
    if settings.lengths is not None:
        ours_meta["max_seq_lengths"] = list(settings.lengths)
    for key, value in (
        ("num_samples", settings.num_samples),
        ("seed", settings.seed),
        ("data_path", settings.data_path),
        ("workers", settings.workers),
    ):
        if value is not None:
            ours_meta[key] = value
    if settings.knobs:
        ours_meta["knobs"] = {task: dict(values) for task, values in settings.knobs.items() if values}
    ours_meta["progress"] = settings.progress
    user_budget = user_generation_budget(getattr(args, "gen_kwargs", None))
    if user_budget is not None:
        ours_meta["gen_budget"] = user_budget
    user_meta = dict(getattr(args, "metadata", None) or {})
    if "chat" in user_meta and parse_bool("chat", user_meta["chat"]) != bool(chat_flag):
        raise EvalUsageError(
            f"--metadata chat={user_meta['chat']!r} contradicts --apply_chat_template being "
            f"{'given' if chat_flag else 'absent'}; longtasks eval sets chat from that flag"
        )
    user_meta.pop("chat", None)
    metadata = _merge_metadata(user_meta, {k: v for k, v in ours_meta.items() if v not in ({}, None)})
    args.metadata = metadata

    model = getattr(args, "model", None) or "hf"
    model_args = dict(getattr(args, "model_args", None) or {})
    checked_args = dict(model_args)
    if getattr(args, "batch_size", None) is not None:  # lm-eval hands --batch_size to the model too
        checked_args.setdefault("batch_size", args.batch_size)
    try:
        check_model_type_args(model, checked_args)  # before the tokenizer loads and any data is generated
    except LengthGuardError as error:
        raise EvalUsageError(str(error)) from error
    if getattr(args, "use_cache", None) and model == "sparse-hf":
        args.use_cache = cache_per_model_args(str(args.use_cache), model_args)
    meta_view = {**model_args, **metadata}
    lengths = _lengths_for_guard(tasks, meta_view)
    budget = generation_budget(tasks, getattr(args, "gen_kwargs", None))
    needed = required_max_length(max(lengths), budget)
    from longtasks.lm_eval_tasks.model_fit import check_model_fits

    user_max_length = any(
        model_args.get(k) not in (None, "", "None") for k in ("max_length", "max_model_len")
    )
    try:
        args.model_args = guard_model_args(model, model_args, needed)
        check_model_fits(args.model_args, needed, user_max_length)
    except LengthGuardError as error:
        raise EvalUsageError(str(error)) from error
    static = any(task.endswith(STATIC_SUFFIX) for task in tasks)
    warn_about_limit(getattr(args, "limit", None), lengths, metadata, static=static)
    log.info(
        "longtasks: tasks %s at lengths %s, generation budget %d tokens; model max_length %s",
        tasks, lengths, budget, args.model_args.get("max_length", args.model_args.get("max_model_len")),
    )  # fmt: skip
    return args


OUR_LOGGERS = ("longtasks", "sparse_eval")
"""Loggers whose INFO lines (model max_length, achieved compression) `longtasks eval` shows like lm-eval's."""


def share_lm_eval_logging() -> None:
    """Give our loggers lm-eval's handler and level (lm-eval configures only its own `lm_eval` logger)."""
    source = logging.getLogger("lm_eval")
    for name in OUR_LOGGERS:
        target = logging.getLogger(name)
        target.setLevel(source.level)
        for handler in source.handlers:
            if handler not in target.handlers:
                target.addHandler(handler)


def start() -> None:
    """What lm-eval's own entry point does first, plus our model plugins and log lines."""
    from lm_eval.utils import setup_logging

    setup_logging()
    share_lm_eval_logging()
    import_model_plugins()


def execute(cli: Any, args: argparse.Namespace, settings: TaskSettings) -> None:
    """Wire our tasks into parsed lm-eval arguments and run lm-eval's command."""
    if getattr(args, "command", None) == "run":
        prepare_run(args, settings)
    elif hasattr(args, "include_path"):
        args.include_path = args.include_path or str(tasks_dir())
    cli.execute(args)


def run_lm_eval(argv: Sequence[str], settings: TaskSettings) -> None:
    """Parse `argv` with lm-eval's CLI, wire in our tasks and run it."""
    start()
    cli, args = parse_lm_eval_args(argv)
    execute(cli, args, settings)
