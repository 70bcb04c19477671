"""Greedy generation for one sequence under a sparse method, with KV compression applied after prefill.

`model.generate` cannot be used for KV methods: it infers positions from the cache length, which is wrong
once the cache has been pruned. This loop prefills with a `DynamicCache` inside `sparse_eval.apply`, lets
the cache be rewritten from the session's pending KV selections, and then decodes one token at a time with
explicit `position_ids` that continue from the *original* prompt length.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from transformers import DynamicCache

from sparse_eval.base import SparseMethod
from sparse_eval.compression import CompressionReport
from sparse_eval.kv_cache import compress_cache
from sparse_eval.patch import SparseSession, apply

StopReason = Literal["eos", "stop_string", "max_new_tokens"]


@dataclass
class GenerationResult:
    """What one greedy run produced.

    Attributes:
        tokens: generated token ids (prompt excluded; the eos token, when hit, included).
        stop_reason: "eos", "stop_string" or "max_new_tokens".
        report: the session's achieved compression (prefill / kv / decode phases).
        logits: float32 logits (vocab,) that chose each generated token, when asked for.
        positions: the position id given to each decoded token (prompt positions are 0..L-1).
    """

    tokens: list[int]
    stop_reason: StopReason
    report: CompressionReport
    logits: list[torch.Tensor] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)


def _prompt_ids(input_ids: torch.Tensor | Sequence[int], device: torch.device) -> torch.Tensor:
    ids = torch.as_tensor(input_ids, dtype=torch.long)
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2 or ids.shape[0] != 1:
        raise ValueError(
            f"generation runs one sequence at a time: input_ids must have shape (L,) or (1, L), "
            f"got {tuple(ids.shape)}"
        )
    if ids.shape[1] == 0:
        raise ValueError("input_ids is empty: the prompt needs at least one token")
    return ids.to(device)


def _eos_ids(model: Any, eos_token_id: int | Sequence[int] | None) -> set[int]:
    if eos_token_id is None:
        eos_token_id = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos_token_id is None:
        return set()
    if isinstance(eos_token_id, int):
        return {eos_token_id}
    return {int(t) for t in eos_token_id}


def _cache_kwarg(model: Any) -> str:
    """transformers renamed `past_key_values` to `cache` (5.2x); use whichever this model's forward takes."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _forward(model: Any, ids: torch.Tensor, cache: DynamicCache, positions: torch.Tensor) -> torch.Tensor:
    """Logits (float32, vocab) of the last position; only that position goes through the LM head."""
    kwargs = {_cache_kwarg(model): cache}
    out = model(input_ids=ids, position_ids=positions, use_cache=True, logits_to_keep=1, **kwargs)
    return out.logits[0, -1].float()


def greedy_decode(
    model: Any,
    input_ids: torch.Tensor | Sequence[int],
    session: SparseSession | None,
    *,
    max_new_tokens: int,
    eos_token_id: int | Sequence[int] | None = None,
    stop: Sequence[str] = (),
    tokenizer: Any = None,
    return_logits: bool = False,
) -> tuple[list[int], StopReason, list[torch.Tensor], list[int]]:
    """The loop itself, inside an already open session (None: the model as it is, e.g. dense SDPA).

    Returns (tokens, stop reason, logits if asked, decode positions)."""
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    stop = [s for s in stop if s]
    if stop and tokenizer is None:
        raise ValueError(f"stop strings {stop!r} need a tokenizer to decode the generated text")
    device = next(model.parameters()).device
    ids = _prompt_ids(input_ids, device)
    prompt_len = ids.shape[1]
    eos = _eos_ids(model, eos_token_id)
    cache = DynamicCache(config=model.config)
    tokens: list[int] = []
    logits_seen: list[torch.Tensor] = []
    positions: list[int] = []
    with torch.inference_mode():
        if session is not None:
            session.pending_kv.clear()
        logits = _forward(model, ids, cache, torch.arange(prompt_len, device=device)[None])
        if session is not None and session.pending_kv:
            compress_cache(cache, session.pending_kv, session.method)
            session.pending_kv.clear()
        while True:
            token = int(logits.argmax())
            tokens.append(token)
            if return_logits:
                logits_seen.append(logits.cpu())
            if token in eos:
                return tokens, "eos", logits_seen, positions
            if stop and any(s in tokenizer.decode(tokens) for s in stop):
                return tokens, "stop_string", logits_seen, positions
            if len(tokens) >= max_new_tokens:
                return tokens, "max_new_tokens", logits_seen, positions
            position = prompt_len + len(tokens) - 1  # the original position, whatever the cache holds
            positions.append(position)
            step = torch.tensor([[token]], device=device)
            logits = _forward(model, step, cache, torch.tensor([[position]], device=device))


def generate(
    model: Any,
    input_ids: torch.Tensor | Sequence[int],
    method: str | SparseMethod = "dense",
    compression: float | None = None,
    *,
    max_new_tokens: int = 32,
    eos_token_id: int | Sequence[int] | None = None,
    stop: Sequence[str] = (),
    tokenizer: Any = None,
    return_logits: bool = False,
    backend: str | None = None,
    **method_kwargs: Any,
) -> GenerationResult:
    """Greedy generation of one prompt with `method` at `compression` (batch size 1).

    Prefill runs under the method; a KV method's selections then rewrite the cache; decoding continues
    token by token at the original positions. Stops at an eos token (default: the model's generation
    config), when the decoded continuation contains one of `stop` (needs `tokenizer`), or after
    `max_new_tokens`. The model is restored when this returns. `backend` defaults to the method instance's
    own backend, or "auto" for a method name."""
    if backend is None:
        backend = method.backend if isinstance(method, SparseMethod) else "auto"
    with apply(model, method, compression=compression, backend=backend, **method_kwargs) as session:
        tokens, reason, logits, positions = greedy_decode(
            model,
            input_ids,
            session,
            max_new_tokens=max_new_tokens,
            eos_token_id=eos_token_id,
            stop=stop,
            tokenizer=tokenizer,
            return_logits=return_logits,
        )
    return GenerationResult(tokens, reason, session.report, logits, positions)
