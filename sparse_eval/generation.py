"""Greedy generation under a sparse method, with KV compression applied after prefill; one prompt or a batch.

`model.generate` cannot be used for KV methods: it infers positions from the cache length, which is wrong
once the cache has been pruned. This loop prefills with a `DynamicCache` inside `sparse_eval.apply`, lets
the cache be rewritten from the session's pending KV selections, and then decodes one token at a time with
explicit `position_ids` that continue from the *original* prompt length.

Batches (`generate(model, [prompt, ...])`, `greedy_decode_batch`): prompts are left-padded to the longest,
each row's positions start at 0 at its first real token, and the padding is declared to the session
(`SparseSession.batch`), which runs every attention call row by row on the row's unpadded slice with the
row's own copy of the method; embeddings, projections, MLPs and the LM head run on the whole batch. So each
row selects, counts and keeps exactly what it would alone, and greedy tokens equal batch-1 runs. A finished
row (eos, stop string) stops being attended and recorded; its later tokens are dropped.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
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
        report: the achieved compression (prefill / kv / decode phases) of this prompt: the session's, or
            in a batch the row's own.
        logits: float32 logits (vocab,) that chose each generated token, when asked for.
        positions: the position id given to each decoded token (prompt positions are 0..L-1).
    """

    tokens: list[int]
    stop_reason: StopReason
    report: CompressionReport
    logits: list[torch.Tensor] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)


def _prompt_ids(input_ids: torch.Tensor | Sequence[int], device: torch.device) -> torch.Tensor:
    ids = torch.as_tensor(input_ids, dtype=torch.long, device=device)
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2 or ids.shape[0] != 1:
        raise ValueError(
            f"a prompt must have shape (L,) or (1, L), got {tuple(ids.shape)}; a batch is a list of prompts "
            "or (B, L) ids with an attention_mask"
        )
    if ids.shape[1] == 0:
        raise ValueError("input_ids is empty: the prompt needs at least one token")
    return ids.to(device)


def _eos_ids(model: Any, eos_token_id: int | Sequence[int] | None) -> set[int]:
    if eos_token_id is None:
        eos_token_id = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos_token_id is None:
        return set()
    values = eos_token_id.tolist() if isinstance(eos_token_id, torch.Tensor) else eos_token_id
    ids = list(values) if isinstance(values, Iterable) and not isinstance(values, str) else [values]
    if not all(isinstance(t, numbers.Integral) and not isinstance(t, bool) for t in ids):
        raise ValueError(f"eos_token_id must be a token id or a list of token ids, got {eos_token_id!r}")
    return {int(t) for t in ids}


def _cache_kwarg(model: Any) -> str:
    """transformers renamed `past_key_values` to `cache` (5.2x); use whichever this model's forward takes."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _forward(model: Any, ids: torch.Tensor, cache: DynamicCache, positions: torch.Tensor) -> torch.Tensor:
    """Logits (float32, vocab) of the last position; only that position goes through the LM head."""
    kwargs = {_cache_kwarg(model): cache}
    out = model(input_ids=ids, position_ids=positions, use_cache=True, logits_to_keep=1, **kwargs)
    return out.logits[0, -1].float()


def _forward_rows(
    model: Any,
    ids: torch.Tensor,
    cache: DynamicCache,
    positions: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Logits (float32, (B, vocab)) of the last position of every row."""
    kwargs: dict[str, Any] = {_cache_kwarg(model): cache}
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask
    out = model(input_ids=ids, position_ids=positions, use_cache=True, logits_to_keep=1, **kwargs)
    return out.logits[:, -1].float()


def _check_generation_args(
    max_new_tokens: int, stop: str | Sequence[str] | None, tokenizer: Any
) -> list[str]:
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    # One string is one stop string (as `stop_strings` in transformers), not a list of its characters.
    stop = [stop] if isinstance(stop, str) else list(stop or ())
    if not all(isinstance(s, str) for s in stop):
        raise ValueError(f"stop must be a string or a list of strings, got {stop!r}")
    stop = [s for s in stop if s]
    if stop and tokenizer is None:
        raise ValueError(f"stop strings {stop!r} need a tokenizer to decode the generated text")
    return stop


def _stop_reason(
    tokens: list[int], eos: set[int], stop: list[str], tokenizer: Any, max_new_tokens: int
) -> StopReason | None:
    """Why generation ends after the last of `tokens`, or None to go on (eos, then stop strings, then length)."""
    if tokens[-1] in eos:
        return "eos"
    if stop and any(s in tokenizer.decode(tokens) for s in stop):
        return "stop_string"
    if len(tokens) >= max_new_tokens:
        return "max_new_tokens"
    return None


def greedy_decode_batch(
    model: Any,
    prompts: Sequence[torch.Tensor | Sequence[int]],
    session: SparseSession | None,
    *,
    max_new_tokens: int,
    eos_token_id: int | Sequence[int] | None = None,
    stop: str | Sequence[str] | None = (),
    tokenizer: Any = None,
    return_logits: bool = False,
) -> list[tuple[list[int], StopReason, list[torch.Tensor], list[int], CompressionReport | None]]:
    """Greedy decoding of several prompts in one left-padded batch, inside an already open session (None:
    the model as it is, given a 2-D padding mask).

    Returns, per prompt, (tokens, stop reason, logits if asked, decode positions, the row's report: what a
    batch-1 run of the prompt records; None without a session). The session's report gets every row's."""
    stop = _check_generation_args(max_new_tokens, stop, tokenizer)
    device = next(model.parameters()).device
    rows = [_prompt_ids(p, device)[0] for p in prompts]
    if not rows:
        raise ValueError("no prompts to generate from")
    lengths = [int(r.shape[0]) for r in rows]
    width = max(lengths)
    pads = torch.tensor([width - n for n in lengths], device=device)
    columns = torch.arange(width, device=device)[None]
    real = columns >= pads[:, None]  # (B, L): left padding
    ids = torch.zeros(len(rows), width, dtype=torch.long, device=device)
    for b, row in enumerate(rows):
        ids[b, width - lengths[b] :] = row
    positions = (columns - pads[:, None]).clamp_min(0)
    eos = _eos_ids(model, eos_token_id)
    cache = DynamicCache(config=model.config)
    tokens: list[list[int]] = [[] for _ in rows]
    reasons: list[StopReason | None] = [None] * len(rows)
    logits_seen: list[list[torch.Tensor]] = [[] for _ in rows]
    decode_positions: list[list[int]] = [[] for _ in rows]
    with torch.inference_mode(), session.batch(real) if session is not None else nullcontext() as batch:
        mask = None if session is not None else real.long()
        if session is not None:
            session.pending_kv.clear()
        logits = _forward_rows(model, ids, cache, positions, mask)
        if session is not None and session.pending_kv:
            compress_cache(cache, session.pending_kv, session)
            session.pending_kv.clear()
        while True:
            chosen = logits.argmax(-1).tolist()
            for b, token in enumerate(chosen):
                if reasons[b] is not None:
                    continue
                tokens[b].append(int(token))
                if return_logits:
                    logits_seen[b].append(logits[b].cpu())
                reasons[b] = _stop_reason(tokens[b], eos, stop, tokenizer, max_new_tokens)
                if reasons[b] is not None and batch is not None:
                    batch.active[b] = False  # no more attention, nothing more recorded for this row
            if all(r is not None for r in reasons):
                break
            step = torch.tensor([[t[-1]] for t in tokens], device=device)
            now = [lengths[b] + len(tokens[b]) - 1 for b in range(len(rows))]
            for b in range(len(rows)):
                if reasons[b] is None:
                    decode_positions[b].append(now[b])
            if mask is not None:
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            logits = _forward_rows(model, step, cache, torch.tensor(now, device=device)[:, None], mask)
    reports = batch.reports if batch is not None else [None] * len(rows)
    return [
        (tokens[b], reasons[b], logits_seen[b], decode_positions[b], reports[b])  # type: ignore[misc]
        for b in range(len(rows))
    ]


def greedy_decode(
    model: Any,
    input_ids: torch.Tensor | Sequence[int],
    session: SparseSession | None,
    *,
    max_new_tokens: int,
    eos_token_id: int | Sequence[int] | None = None,
    stop: str | Sequence[str] | None = (),
    tokenizer: Any = None,
    return_logits: bool = False,
) -> tuple[list[int], StopReason, list[torch.Tensor], list[int]]:
    """The loop itself, inside an already open session (None: the model as it is, e.g. dense SDPA).

    Returns (tokens, stop reason, logits if asked, decode positions)."""
    stop = _check_generation_args(max_new_tokens, stop, tokenizer)
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


def _batch_prompts(
    input_ids: torch.Tensor | Sequence[int] | Sequence[torch.Tensor | Sequence[int]],
    attention_mask: torch.Tensor | None,
) -> list[torch.Tensor | Sequence[int]] | None:
    """The prompts of a batch input, or None for a single prompt ((L,), (1, L) or a list of ints)."""
    if isinstance(input_ids, torch.Tensor):
        if input_ids.dim() != 2 or (input_ids.shape[0] == 1 and attention_mask is None):
            if attention_mask is not None:
                raise ValueError("attention_mask needs 2-D input_ids (batch, length)")
            return None
        if attention_mask is None:
            return list(input_ids)
        mask = torch.as_tensor(attention_mask, device=input_ids.device).bool()
        if mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask {tuple(mask.shape)} must have the shape of input_ids {tuple(input_ids.shape)}"
            )
        return [row[keep] for row, keep in zip(input_ids, mask, strict=True)]
    if attention_mask is not None:
        raise ValueError("attention_mask goes with a 2-D input_ids tensor; give a list of prompts instead")
    if isinstance(input_ids, Sequence) and len(input_ids) and not isinstance(input_ids[0], int):
        return list(input_ids)  # type: ignore[arg-type]
    return None


def generate(
    model: Any,
    input_ids: torch.Tensor | Sequence[int],
    method: str | SparseMethod = "dense",
    compression: float | None = None,
    *,
    max_new_tokens: int = 32,
    eos_token_id: int | Sequence[int] | None = None,
    stop: str | Sequence[str] | None = (),
    tokenizer: Any = None,
    return_logits: bool = False,
    backend: str | None = None,
    attention_mask: torch.Tensor | None = None,
    batch_size: int | None = None,
    **method_kwargs: Any,
) -> GenerationResult | list[GenerationResult]:
    """Greedy generation with `method` at `compression`, of one prompt or of a batch.

    Prefill runs under the method; a KV method's selections then rewrite the cache; decoding continues
    token by token at the original positions. Stops at an eos token (default: the model's generation
    config), when the decoded continuation contains one of `stop` (needs `tokenizer`), or after
    `max_new_tokens`. The model is restored when this returns. `backend` defaults to the method instance's
    own backend, or "auto" for a method name.

    One prompt ((L,) or (1, L) ids, or a list of ints) gives a `GenerationResult`. A batch (a list of
    prompts of any lengths, or (B, L) ids with B > 1 or with an `attention_mask` marking real tokens)
    gives a list of them, in order, each with its own report (what a run of that prompt alone records),
    decoded `batch_size` prompts at a time (None: all at once) in left-padded batches; tokens equal
    batch-1 runs (see the module docstring)."""
    if backend is None:
        backend = method.backend if isinstance(method, SparseMethod) else "auto"
    prompts = _batch_prompts(input_ids, attention_mask)
    if prompts is not None:
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        step = batch_size or max(1, len(prompts))
        results: list[GenerationResult] = []
        with apply(model, method, compression=compression, backend=backend, **method_kwargs) as session:
            for start in range(0, len(prompts), step):
                for tokens, reason, logits, positions, report in greedy_decode_batch(
                    model,
                    prompts[start : start + step],
                    session,
                    max_new_tokens=max_new_tokens,
                    eos_token_id=eos_token_id,
                    stop=stop,
                    tokenizer=tokenizer,
                    return_logits=return_logits,
                ):
                    assert report is not None
                    results.append(GenerationResult(tokens, reason, report, logits, positions))
        return results
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
