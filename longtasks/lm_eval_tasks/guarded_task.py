"""The lm-eval task class of every longtasks task: it checks each request before lm-eval runs it.

`longtasks eval` sets up lm-eval so that prompts are exact and never cut, but plain `lm-eval` can still be
configured so that they are not: a chat setting that differs from the data's, a `--gen_kwargs max_gen_toks`
that leaves too little room for the answer or pushes the prompt past `max_length` (HF left-truncates it with
only a warning). lm-eval hands the task the final context string and the effective generation settings in
`construct_requests`, so the check lives there and fails the run with a message that says what to change.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from lm_eval.api.task import ConfigurableTask

from longtasks.lm_eval_tasks.budget import MIN_EXPLANATION_TOKENS


class RequestGuardError(ValueError):
    """A request would not reach the model as the data promises (wrong length, budget or truncation)."""


@cache
def _tokenizer(name: str):
    from longtasks.tokenizer import load_tokenizer

    return load_tokenizer(None if name == "qwen2.5" else name)


def _try_tokenizer(name: str | None) -> Any:
    """The tokenizer `name` loads, or None (no name, or one that is not a tokenizer, e.g. an API model)."""
    if name is None:
        return None
    try:
        return _tokenizer(name)
    except ValueError:
        return None


def counting_tokenizer(task: str, doc: dict, metadata: dict) -> tuple[Any, str | None]:
    """The tokenizer to count `doc`'s prompt in, and why it is not the data's when it may not be.

    The data's `tokenizer` column holds whatever `generate --tokenizer` was given, e.g. a relative folder
    that only resolves where the data was made, so the run's own tokenizer (model args / metadata) comes
    first when it is the data's (same revision), then the column's name, then the run's tokenizer anyway.
    """
    from longtasks.lm_eval_tasks.options import tokenizer_name
    from longtasks.lm_eval_tasks.static import same_tokenizer_files, unloadable_data_tokenizer

    given = _try_tokenizer(tokenizer_name(metadata))
    if given is not None and same_tokenizer_files(given.revision, doc.get("tokenizer_revision")):
        return given, None
    try:
        return _tokenizer(doc["tokenizer"]), None
    except ValueError as error:
        if given is not None:
            return given, (
                f"counted in the run's tokenizer {given.name!r} because the data's, {doc['tokenizer']!r} "
                f"({doc.get('tokenizer_revision')}, from the dataset's `tokenizer` column), cannot be loaded "
                "here; if the model's tokenizer differs from the data's, regenerate the data with the model's "
                "(`longtasks generate --tokenizer`)"
            )
        raise unloadable_data_tokenizer(task, doc["tokenizer"], error) from error


class GuardedTask(ConfigurableTask):
    """A ConfigurableTask whose generation requests are checked against the document they come from."""

    def __init__(self, config: dict | None = None, **kwargs: Any) -> None:
        # lm-eval's factory hands the YAML's own `class` key on with the config; TaskConfig rejects it.
        super().__init__(config={k: v for k, v in (config or {}).items() if k != "class"}, **kwargs)

    def construct_requests(self, doc: dict, ctx: Any, **kwargs: Any) -> Any:
        if isinstance(ctx, str) and self.OUTPUT_TYPE == "generate_until":
            self._check(doc, ctx)
        return super().construct_requests(doc, ctx, **kwargs)

    def _check(self, doc: dict, ctx: str) -> None:
        from longtasks.lm_eval_tasks.guard import GEN_TOKEN_KEYS
        from longtasks.scoring import format_answer

        task = self.config.task
        tokenizer, stand_in = counting_tokenizer(task, doc, self.config.metadata or {})
        tokens = tokenizer.count_model_input(ctx)
        if tokens != doc["length"] and stand_in is not None:
            raise RequestGuardError(
                f"{task}: document {doc['id']} is {tokens} tokens, not its {doc['length']}, {stand_in}"
            )
        if tokens != doc["length"]:
            chat = "on" if doc["chat"] else "off"
            raise RequestGuardError(
                f"{task}: document {doc['id']} reaches the model as {tokens} tokens, not its {doc['length']}: "
                f"the data was made with chat mode {chat}, so run lm-eval "
                f"{'with' if doc['chat'] else 'without'} --apply_chat_template (and no system instruction or "
                "few-shot examples), or use `longtasks eval`, which sets both sides"
            )
        generation = self.config.generation_kwargs or {}
        budget = next((int(generation[k]) for k in GEN_TOKEN_KEYS if generation.get(k) is not None), None)
        if budget is None:
            return
        answer = json.loads(doc["answer"]) if isinstance(doc["answer"], str) else doc["answer"]
        needed = tokenizer.count(format_answer(doc["answer_kind"], answer)) + MIN_EXPLANATION_TOKENS
        if budget < needed:
            raise RequestGuardError(
                f"{task}: max_gen_toks={budget} leaves no room for document {doc['id']}'s answer "
                f"({needed} tokens with a short explanation); raise it, e.g. --gen_kwargs max_gen_toks={2 * needed}"
            )
        metadata = self.config.metadata or {}
        for key in ("max_length", "max_model_len"):
            value = metadata.get(key)
            if value in (None, "", "None"):
                continue
            limit = int(value)
            if tokens + budget > limit:
                raise RequestGuardError(
                    f"{task}: {key}={limit} cannot hold document {doc['id']} ({tokens} tokens) plus "
                    f"max_gen_toks={budget}: lm-eval would cut the start of the prompt; set {key}>="
                    f"{tokens + budget + 8} or lower max_gen_toks"
                )
            return
