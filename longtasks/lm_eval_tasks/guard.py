"""Make sure lm-eval never truncates one of our prompts.

lm-eval's Hugging Face model keeps only the last ``max_length - max_gen_toks`` prompt tokens and
merely logs a warning when it cuts. So before a run we work out the largest sequence our
tasks need (longest prompt + generation budget + any special tokens the tokenizer adds) and either
set the model's ``max_length`` to it or stop with an error when the user's value is smaller.
"""

from __future__ import annotations

import fnmatch
import inspect
import logging
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

GEN_TOKEN_KEYS = ("max_gen_toks", "max_new_tokens", "max_tokens", "max_completion_tokens")
"""Names lm-eval accepts for the generation budget (its `normalize_gen_kwargs` priority order)."""


class LengthGuardError(ValueError):
    """The run would truncate prompts (or cannot be checked); raised before anything is generated."""


def requested_tasks(requested: Iterable[str]) -> list[str]:
    """Our lm-eval task names among ``--tasks`` entries (groups expanded, glob patterns matched)."""
    from longtasks.registry import groups, lm_eval_task_names

    ours = lm_eval_task_names()
    members = groups()
    found: list[str] = []
    for entry in requested:
        if entry in members:
            found.extend(members[entry])
            continue
        found.extend(name for name in ours if fnmatch.fnmatchcase(name, entry))
        for group, tasks in members.items():
            if fnmatch.fnmatchcase(group, entry):
                found.extend(tasks)
    return list(dict.fromkeys(found))


def user_generation_budget(gen_kwargs: Mapping[str, Any] | None) -> int | None:
    """The budget the user set with ``--gen_kwargs`` (it replaces every task's), or None."""
    for key in GEN_TOKEN_KEYS:
        if gen_kwargs and gen_kwargs.get(key) is not None:
            try:
                return int(gen_kwargs[key])
            except (TypeError, ValueError):
                raise ValueError(f"--gen_kwargs {key}={gen_kwargs[key]!r} is not a whole number") from None
    return None


def generation_budget(tasks: Iterable[str], gen_kwargs: Mapping[str, Any] | None = None) -> int:
    """Most tokens any of `tasks` may generate: the user's ``--gen_kwargs`` budget wins over the YAML."""
    from longtasks.registry import gen_budget

    user = user_generation_budget(gen_kwargs)
    if user is not None:
        return user
    budgets = [gen_budget(task) for task in tasks]
    if not budgets:
        raise ValueError("no longtasks task requested")
    return max(budgets)


def required_max_length(max_prompt: int, budget: int) -> int:
    """The `max_length` that holds the longest prompt and the generation budget. A prompt's length already
    counts the special tokens the model is fed (a BOS: `LengthTokenizer.count_model_input`), and lm-eval cuts
    a prompt only past max_length - max_gen_toks, so nothing is added for them."""
    return max_prompt + budget


def check_metadata_max_length(task: str, metadata: Mapping[str, Any], required: int) -> None:
    """Second line of defence for runs that bypass `longtasks eval`: lm-eval's CLI merges the model
    arguments into the task metadata, so a too-small `max_length` is caught before generating."""
    for key in ("max_length", "max_model_len"):
        value = metadata.get(key)
        if value in (None, "", "None"):
            continue
        try:
            size = int(value)
        except (TypeError, ValueError):
            continue
        if size < required:
            raise LengthGuardError(
                f"{task}: {key}={size} is too small: prompts plus the generation budget need {required} tokens "
                f"and lm-eval would silently cut the start of longer prompts; set {key}>={required}"
            )
        return
    log.warning(
        "%s: no max_length in the model arguments; make sure the model's maximum length is at least %d "
        "tokens, or lm-eval will cut the start of longer prompts with only a warning (`longtasks eval` "
        "sets it for you)",
        task, required,
    )  # fmt: skip


def _model_class(model: str) -> type:
    import lm_eval.models  # noqa: F401  (fills lm-eval's model table even if a plugin registered first)
    from lm_eval.api.registry import get_model

    try:
        return get_model(model)
    except ValueError as error:
        raise LengthGuardError(
            f"{error} (model types from sparse_eval, such as sparse-hf, need `pip install longtasks[sparse]`)"
        ) from error
    except ImportError as error:
        raise LengthGuardError(f"model type {model!r} cannot be loaded: {error}") from error


def check_model_type_args(model: str, model_args: Mapping[str, Any]) -> None:
    """Let a model type that can (`check_model_args`, e.g. sparse-hf) refuse bad arguments now, before any
    data is generated, instead of when lm-eval builds the model. Sparse arguments under another model type
    (e.g. `--model hf` with method=) would reach the model's constructor and fail there, after the data."""
    sparse = sorted(key for key in ("method", "compression", "sparse_backend") if key in model_args)
    if sparse and model != "sparse-hf":
        raise LengthGuardError(
            f"--model {model} takes no {', '.join(f'{key}=' for key in sparse)}: those are sparse-hf's arguments "
            "(use --model sparse-hf; it needs longtasks[sparse])"
        )
    check = getattr(_model_class(model), "check_model_args", None)
    if callable(check):
        try:
            check(model_args)
        except (ValueError, TypeError, KeyError) as error:
            message = error.args[0] if error.args else repr(error)
            raise LengthGuardError(f"--model {model}: {message}") from None


def _accepted_params(model: str) -> set[str]:
    model_class = _model_class(model)
    params: set[str] = set()
    for klass in inspect.getmro(model_class):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        signature = inspect.signature(init).parameters
        params.update(signature)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.values()):
            break  # only an __init__ taking **kwargs passes unknown arguments on to its parent
    return params


def guard_model_args(model: str, model_args: Mapping[str, Any], required: int) -> dict[str, Any]:
    """`model_args` with a `max_length` that fits `required` tokens; LengthGuardError if the user's
    own value is too small or the model type has no such setting."""
    args = dict(model_args)
    params = _accepted_params(model)
    keys = [key for key in ("max_length", "max_model_len") if key in params]
    if not keys:
        raise LengthGuardError(
            f"model type {model!r} takes no max_length argument, so longtasks cannot make sure that "
            f"prompts of up to {required} tokens (prompt + generation) are not truncated; use a model "
            "type that does (hf, vllm, sparse-hf, the API models)"
        )
    given = {key: args[key] for key in keys if args.get(key) not in (None, "", "None")}
    for key, value in given.items():
        try:
            size = int(value)
        except (TypeError, ValueError):
            raise LengthGuardError(f"{key}={value!r} in --model_args is not a whole number") from None
        if size < required:
            raise LengthGuardError(
                f"{key}={size} in --model_args is too small: the prompts plus their generation budget "
                f"need {required} tokens, and lm-eval would silently cut the start of longer prompts. "
                f"Raise it to at least {required}, or leave it out and longtasks sets it."
            )
    if not given:
        args["max_length"] = required
    return args
