"""`sparse_eval.apply`: switch a Hugging Face model's attention to a sparse method, and back.

Integration is transformers' own attention interface: a per-session function is registered with
`AttentionInterface.register` and selected with `model.set_attn_implementation`; on exit the model's
previous implementation is restored and the registration removed (also when the body raises). Models whose
attention layers call `ALL_ATTENTION_FUNCTIONS.get_interface(...)` work: Llama, Qwen2/2.5/3, Mistral and
most decoder-only models of transformers 5.x. Batch size 1 without padding: the interface passes no
padding mask to a custom function, so batched, padded inputs could not be handled faithfully.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from sparse_eval.backends.dense import dense_attention
from sparse_eval.base import BACKENDS, SparseMethod
from sparse_eval.compression import PHASES, CompressionReport, CompressionShortfallWarning, causal_pairs
from sparse_eval.registry import get_method

SUPPORTED = (
    "Llama, Qwen2/2.5/3 and Mistral-style decoder models (attention routed through AttentionInterface)"
)
_counter = itertools.count()


@dataclass
class SparseSession:
    """What `apply` yields: the method in use, its compression report, and KV selections awaiting the cache.

    Attributes:
        method: the (copied) method instance that runs.
        report: per-layer, per-head achieved compression of this session.
        pending_kv: layer index -> indices (B, Hkv, keep) chosen by `select_kv` during the last prefill; the
            generation loop applies them to the cache after prefill and clears them.
        attn_name: the name registered in transformers' AttentionInterface.
        calls: attention calls served (0 after a forward means the model bypassed the interface).
    """

    method: SparseMethod
    report: CompressionReport
    pending_kv: dict[int, torch.Tensor] = field(default_factory=dict)
    attn_name: str = ""
    calls: int = 0

    def attention(
        self,
        module: torch.nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scaling: float | None = None,
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, None]:
        """The function registered with transformers: dispatches prefill / decode / chunked calls."""
        self.calls += 1
        _check_call(module, query, key, kwargs)
        layer_idx = int(module.layer_idx)
        scale = float(scaling) if scaling is not None else query.shape[-1] ** -0.5
        q_len, k_len = query.shape[-2], key.shape[-2]
        method = self.method
        if q_len == k_len:
            out = method.prefill(
                query,
                key,
                value,
                layer_idx=layer_idx,
                scaling=scale,
                stats=self.report.layer(layer_idx, "prefill"),
            )
            keep = method.select_kv(
                query,
                key,
                value,
                layer_idx=layer_idx,
                scaling=scale,
                stats=self.report.layer(layer_idx, "kv"),
            )
            if keep is not None:
                self.pending_kv[layer_idx] = keep
        elif q_len == 1:
            out = method.decode(
                query,
                key,
                value,
                layer_idx=layer_idx,
                scaling=scale,
                stats=self.report.layer(layer_idx, "decode"),
            )
        else:  # a chunk of new tokens after a cache: dense, causal with the offset of the cached keys
            n = float(causal_pairs(q_len, k_len))
            self.report.layer(layer_idx, "prefill").add(torch.full((query.shape[1],), n), n)
            out = dense_attention(query, key, value, scale)
        return out.transpose(1, 2).contiguous(), None


def _check_call(
    module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, kwargs: dict[str, Any]
) -> None:
    if query.shape[0] != 1:
        raise ValueError(
            f"sparse_eval supports batch size 1 (got {query.shape[0]}): run the model one sequence at a time "
            "(e.g. lm-eval batch_size=1)"
        )
    if getattr(module, "layer_idx", None) is None:
        raise TypeError(f"{type(module).__name__} has no layer_idx; sparse_eval needs it to track layers")
    if not getattr(module, "is_causal", True):
        raise TypeError(
            f"{type(module).__name__} is not causal self-attention; sparse_eval supports {SUPPORTED}"
        )
    window = kwargs.get("sliding_window")
    if window is not None:
        # A sliding-window cache drops old keys, so k_len never exceeds the window: look at the positions.
        positions = kwargs.get("position_ids")
        seen = key.shape[-2] if positions is None else max(key.shape[-2], int(positions.max()) + 1)
        if seen > window:
            raise NotImplementedError(
                f"sliding-window attention (window {window} < {seen} positions) is not supported; "
                f"sparse_eval supports full causal attention ({SUPPORTED})"
            )
    for unsupported in ("softcap", "s_aux"):
        if kwargs.get(unsupported) is not None:
            raise NotImplementedError(
                f"attention with {unsupported!r} is not supported; it supports {SUPPORTED}"
            )


def _resolve_method(
    method: str | SparseMethod, compression: float | None, backend: str | None, kwargs: Any
) -> SparseMethod:
    if backend is None:  # keep an instance's own backend; names get the automatic choice
        backend = method.backend if isinstance(method, SparseMethod) else "auto"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if isinstance(method, SparseMethod):
        changes = dict(kwargs)
        if compression is not None:
            changes["compression"] = compression
        valid = {f.name for f in dataclasses.fields(method) if f.init}
        unknown = sorted(set(changes) - valid)
        if unknown:
            raise TypeError(f"method {method.name!r} has no argument(s) {unknown}; valid: {sorted(valid)}")
        return dataclasses.replace(method, backend=backend, **changes)
    if isinstance(method, str):
        if compression is not None:
            kwargs = {**kwargs, "compression": compression}
        return get_method(method, backend=backend, **kwargs)
    raise TypeError(f"method must be a method name or a SparseMethod instance, got {type(method).__name__}")


def _check_model(model: Any) -> None:
    name = type(model).__name__
    if not hasattr(model, "set_attn_implementation") or not hasattr(model, "config"):
        raise TypeError(
            f"{name} is not a transformers PreTrainedModel with set_attn_implementation; sparse_eval.apply "
            f"works with {SUPPORTED}"
        )
    can_set = getattr(type(model), "_can_set_attn_implementation", None)
    if can_set is not None and not can_set():
        raise TypeError(
            f"{name} does not route its attention through transformers' AttentionInterface, so it cannot be "
            f"patched; sparse_eval.apply works with {SUPPORTED}"
        )
    if not any(getattr(m, "layer_idx", None) is not None for m in model.modules()):
        raise TypeError(
            f"{name} has no attention layers with layer_idx; sparse_eval.apply works with {SUPPORTED}"
        )


@contextmanager
def apply(
    model: Any,
    method: str | SparseMethod,
    compression: float | None = None,
    backend: str | None = None,
    **method_kwargs: Any,
) -> Iterator[SparseSession]:
    """Run `model` with a sparse attention method inside the `with` block.

    `method` is a registered name (see `list_methods()`) or a method instance (copied, never mutated);
    `compression` and `method_kwargs` set its fields; `backend` is "auto" (FlexAttention on CUDA, reference
    elsewhere), "reference" or "flex" (None: the instance's own, or "auto" for a name). Yields a `SparseSession` whose `.report` holds the achieved compression.
    """
    chosen = _resolve_method(method, compression, backend, method_kwargs)
    _check_model(model)
    from transformers import AttentionInterface

    session = SparseSession(
        method=chosen,
        report=CompressionReport(method=chosen.name, target_compression=chosen.compression),
        attn_name=f"sparse_eval_{chosen.name}_{next(_counter)}",
    )
    previous = model.config._attn_implementation
    AttentionInterface.register(session.attn_name, session.attention)
    try:
        model.set_attn_implementation(session.attn_name)
        if model.config._attn_implementation != session.attn_name:
            raise TypeError(
                f"{type(model).__name__} refused the attention implementation switch (it does not use "
                f"AttentionInterface); sparse_eval.apply works with {SUPPORTED}"
            )
        yield session
        shortfall = session.report.shortfall(chosen.phase) if chosen.phase in PHASES else None
        if shortfall:
            warnings.warn(shortfall, CompressionShortfallWarning, stacklevel=3)
        if session.pending_kv:
            warnings.warn(
                f"{chosen.name} selected KV entries to keep for {len(session.pending_kv)} layer(s) but no cache "
                "was compressed, so decoding (if any) ran on the full cache and the report's 'kv' phase did not "
                "happen; generate with sparse_eval.generate, or apply "
                "sparse_eval.compress_cache(cache, session.pending_kv, session.method) after the prefill",
                RuntimeWarning,
                stacklevel=3,
            )
    finally:
        try:
            if model.config._attn_implementation != previous:
                model.set_attn_implementation(previous)
        finally:
            AttentionInterface._global_mapping.pop(session.attn_name, None)
