"""The contract every sparse attention method follows.

Shaped like kvpress presses and the seed repo's `AbstractAttention`: a method is a small dataclass whose
fields are its hyperparameters (with the paper's defaults) and it overrides only the phase it changes.
The base class gives dense defaults for every phase, so `compression=1` and unoverridden phases are
exactly dense attention.
All methods share one knob, `compression` (dense attended pairs, or KV tokens, over the sparse ones).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields
from typing import ClassVar

import torch

from sparse_eval.backends.dense import dense_attention
from sparse_eval.compression import LayerStats, causal_pairs, check_compression, head_counts

BACKENDS = ("auto", "reference", "flex")
METHOD_PHASES = ("prefill", "decode", "kv", "dense")


def _wrong_number(annotation: str, value: object) -> str | None:
    """What a knob annotated `int` or `float` (or `float | None`) must be, when `value` is not that."""
    if annotation == "int":
        whole = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        return None if whole else "a whole number"
    if annotation in ("float", "float | None"):
        if value is None and annotation == "float | None":
            return None
        real = isinstance(value, numbers.Real) and not isinstance(value, bool)
        return None if real and not math.isnan(value) else "a number"  # type: ignore[arg-type]
    return None


@dataclass
class SparseMethod:
    """Base of all methods: dense attention in every phase.

    Attributes:
        compression: target ratio of dense attended (query, key) pairs, or KV tokens, to sparse ones;
            1 keeps everything. Fixed-budget methods derive their budgets from it and the sequence length;
            adaptive methods map it to their own parameter and report what they achieved.
        backend: how selected patterns are executed: "reference" (dense boolean mask + masked SDPA, any
            device; what the tests use), "flex" (compiled FlexAttention block masks, CUDA), or "auto"
            (flex on CUDA, reference elsewhere). Not a hyperparameter: the same selection runs on both.
    """

    compression: float = 1.0
    backend: str = field(default="auto", kw_only=True, repr=False, compare=False)

    name: ClassVar[str] = ""
    phase: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        self.compression = check_compression(self.compression)
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        self._check_knob_types()

    def _check_knob_types(self) -> None:
        """Whole-number knobs must be integers and the others real numbers (not NaN): a float tile size or a
        string passed from Python would get past the range checks and fail deep inside a forward (or, as a
        NaN threshold, silently change the rule) without naming the knob."""
        for knob in fields(self):
            value = getattr(self, knob.name)
            annotation = knob.type if isinstance(knob.type, str) else getattr(knob.type, "__name__", "")
            if (wanted := _wrong_number(annotation, value)) is not None:
                raise ValueError(f"{self.name or 'dense'} {knob.name} must be {wanted}, got {value!r}")

    def resolve_backend(self, tensor: torch.Tensor) -> str:
        """The concrete backend for a tensor: "auto" means flex on CUDA, reference elsewhere; "flex" asked for
        on CPU tensors is refused (its compiled kernels are CUDA's; some paths fail inside inductor on CPU)."""
        if self.backend == "auto":
            return "flex" if tensor.is_cuda else "reference"
        if self.backend == "flex" and not tensor.is_cuda:
            raise ValueError(
                f"backend 'flex' runs on CUDA tensors, got {tensor.device} ones: use backend 'auto' or 'reference'"
            )
        return self.backend

    @property
    def is_dense(self) -> bool:
        """True when nothing may be dropped (compression 1): every phase must then equal dense attention."""
        return self.compression == 1.0

    def prefill(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        *,
        layer_idx: int,
        scaling: float,
        stats: LayerStats,
    ) -> torch.Tensor:
        """Causal self-attention over the prompt. q (B, Hq, L, D); k/v (B, Hkv, L, D), not repeated for GQA.
        Returns (B, Hq, L, D). Records attended pairs per query head in `stats`. Default: dense."""
        n = causal_pairs(query.shape[-2])
        stats.add(head_counts(query.shape[1], n), float(n))
        return dense_attention(query, key, value, scaling)

    def decode(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        *,
        layer_idx: int,
        scaling: float,
        stats: LayerStats,
    ) -> torch.Tensor:
        """One new token attending the whole cache. q (B, Hq, 1, D); k/v (B, Hkv, Lk, D) include the cache.
        Records attended keys per query head in `stats`. Default: dense."""
        n = key.shape[-2]
        stats.add(head_counts(query.shape[1], n), float(n))
        return dense_attention(query, key, value, scaling)

    def extend(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        *,
        layer_idx: int,
        scaling: float,
        stats: LayerStats,
    ) -> torch.Tensor:
        """Several new tokens after a cache (a question fed after a compressed context, a chunked prompt):
        q (B, Hq, Lq, D) are the last Lq of k/v (B, Hkv, Lk, D). Records attended pairs per query head in
        `stats` (the session passes the "prefill" slot). Default: dense, causal."""
        n = causal_pairs(query.shape[-2], key.shape[-2])
        stats.add(head_counts(query.shape[1], n), float(n))
        return dense_attention(query, key, value, scaling)

    def select_kv(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        *,
        layer_idx: int,
        scaling: float,
        stats: LayerStats,
    ) -> torch.Tensor | None:
        """Called at prefill for KV-compression methods: indices (B, Hkv, keep) of the KV positions to keep
        in the cache after prefill (the method records kept tokens per KV head in `stats`, a "kv" phase
        slot). Default None: keep everything. The session stores the result in `session.pending_kv`."""
        return None


@dataclass
class DenseMethod(SparseMethod):
    """Dense attention through the same interface: the baseline and a check of the plumbing."""

    name: ClassVar[str] = "dense"
    phase: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.compression != 1.0:
            raise ValueError(f"method 'dense' drops nothing: compression must be 1, got {self.compression:g}")
