"""Kernels that execute a selected sparse pattern: a masked-SDPA reference and compiled FlexAttention."""

from __future__ import annotations

import torch

from sparse_eval.backends.pattern import BlockPattern


def run_pattern(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    pattern: BlockPattern,
    scaling: float,
    backend: str,
) -> torch.Tensor:
    """Execute a selected pattern with the named backend ("reference" or "flex")."""
    if backend == "flex":
        from sparse_eval.backends.flex import flex_attention_pattern

        return flex_attention_pattern(query, key, value, pattern, scaling)
    if backend == "reference":
        from sparse_eval.backends.reference import reference_attention

        return reference_attention(query, key, value, pattern, scaling)
    raise ValueError(f"backend must be 'reference' or 'flex', got {backend!r}")
