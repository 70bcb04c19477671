"""Checks that the model can read what the tasks will send it, before any data is generated.

A prompt plus its generation budget beyond the model's trained context (`max_position_embeddings`) runs
without a word and measures extrapolation, not the task; a `tokenizer` from another model can produce ids
beyond the model's embedding table and crash mid-run. Both are found from the model's `config.json`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def model_config(model_args: Mapping[str, Any]) -> Any | None:
    """The model's transformers config, or None when it cannot be read offline (an API model, no cache)."""
    pretrained = model_args.get("pretrained")
    if not isinstance(pretrained, str) or not pretrained:
        return None
    try:
        from transformers import AutoConfig

        kwargs = {"gguf_file": model_args["gguf_file"]} if model_args.get("gguf_file") else {}
        return AutoConfig.from_pretrained(pretrained, **kwargs)
    except Exception:  # transformers raises OSError/ValueError/EnvironmentError by cause: nothing to check
        return None


def check_model_fits(model_args: Mapping[str, Any], required: int, user_max_length: bool) -> None:
    """ValueError when prompts + budget exceed the model's context (unless the user set max_length
    themselves, knowingly), or when the named tokenizer has ids past the model's vocabulary."""
    config = model_config(model_args)
    if config is None:
        return
    context = getattr(config, "max_position_embeddings", None)
    if isinstance(context, int) and required > context and not user_max_length:
        raise ValueError(
            f"the model's context is {context} tokens (max_position_embeddings) but the longest prompt plus "
            f"its generation budget need {required}; use shorter --lengths, or pass max_length={required} in "
            "--model_args to run beyond the trained context on purpose"
        )
    tokenizer = model_args.get("tokenizer")
    vocabulary = getattr(config, "vocab_size", None)
    if isinstance(tokenizer, str) and tokenizer and tokenizer != model_args.get("pretrained") and vocabulary:
        from longtasks.tokenizer import load_tokenizer

        size = len(load_tokenizer(tokenizer).hf)
        if size > vocabulary:
            raise ValueError(
                f"tokenizer {tokenizer!r} has {size} tokens but the model's embedding holds {vocabulary}: "
                "its ids would crash the model; use the model's own tokenizer"
            )
