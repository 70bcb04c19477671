"""Capture the q/k/v a real model feeds its attention layers, so selection rules can be scored on real
attention instead of random tensors (random q/k spread the mass evenly and hide missed sinks and bands)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from sparse_eval.base import SparseMethod
from sparse_eval.compression import LayerStats


@dataclass
class LayerQKV:
    """One layer's prefill inputs: q (1, Hq, L, D) and k, v (1, Hkv, L, D) after RoPE, float32 on the CPU."""

    layer_idx: int
    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    scaling: float


@dataclass
class _Recorder(SparseMethod):
    """Dense attention that keeps a copy of every prefill call's inputs (not registered: an internal tool)."""

    name: ClassVar[str] = "capture"
    phase: ClassVar[str] = "dense"
    layers: dict[int, LayerQKV] = field(default_factory=dict, init=False, repr=False, compare=False)

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
        self.layers[layer_idx] = LayerQKV(
            layer_idx, *(t.detach().float().cpu() for t in (query, key, value)), float(scaling)
        )
        return super().prefill(query, key, value, layer_idx=layer_idx, scaling=scaling, stats=stats)


def capture_qkv(
    model: Any, input_ids: torch.Tensor, logits_to_keep: int = 1
) -> tuple[list[LayerQKV], torch.Tensor]:
    """One dense forward pass of `input_ids` (1, L): every layer's attention inputs in order, and the float32
    logits (n, vocab) of the last n = `logits_to_keep` positions."""
    from sparse_eval.patch import apply

    with torch.inference_mode(), apply(model, _Recorder(backend="reference")) as session:
        out = model(
            input_ids=input_ids.to(next(model.parameters()).device),
            use_cache=False,
            logits_to_keep=logits_to_keep,
        )
        recorder = session.method
    assert isinstance(recorder, _Recorder)
    return [recorder.layers[i] for i in sorted(recorder.layers)], out.logits[0].float().cpu()


def truncate(layers: list[LayerQKV], length: int) -> list[LayerQKV]:
    """The same layers over the first `length` positions only: what a pass over that prefix captures
    (attention is causal, so earlier positions never see later ones)."""
    return [
        LayerQKV(
            x.layer_idx, x.query[..., :length, :], x.key[..., :length, :], x.value[..., :length, :], x.scaling
        )
        for x in layers
    ]
