"""Model-level fidelity: the logits a model gives a fixed continuation under a method, against dense.

The continuation (e.g. the gold answer) is teacher-forced one token at a time after the prompt, the way a
sparse method meets it in generation: prefill methods run the prompt sparsely and decode densely; decode
methods (Quest) select at every step; KV methods compress the cache after the prompt. Comparing with the
dense logits gives next-token KL and argmax agreement without needing a model that can solve the task.

Decode and KV methods prefill densely, so one captured dense prefill serves them all: its cache is rebuilt
from the captured keys/values (exactly what a prefill caches) and their selections run on the captured q/k.
Captures are kept on the CPU in float32; everything fed to the model goes to the model's device and dtype
first, and logits come back on the CPU, so the same code runs a CUDA model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from sparse_eval.base import SparseMethod
from sparse_eval.compression import CompressionReport
from sparse_eval.fidelity.capture import LayerQKV, capture_qkv, truncate
from sparse_eval.generation import _forward
from sparse_eval.kv_cache import compress_cache
from sparse_eval.patch import apply


@dataclass
class DensePrefill:
    """A dense prompt pass: every layer's q/k/v and the logits predicting the first continuation token."""

    layers: list[LayerQKV]
    logits: torch.Tensor

    def cache(self, model: Any) -> DynamicCache:
        """A fresh cache holding the prompt's keys and values, as a dense prefill leaves it: on the model's
        device and in its dtype (the capture is float32 on the CPU)."""
        cache = DynamicCache(config=model.config)
        device, dtype = _device_dtype(model)
        for layer in self.layers:
            cache.update(layer.key.to(device, dtype), layer.value.to(device, dtype), layer.layer_idx)
        return cache


def _device_dtype(model: Any) -> tuple[torch.device, torch.dtype]:
    """Where the model's weights live and their dtype: what its inputs and caches must match."""
    weight = next(model.parameters())
    return weight.device, weight.dtype


def dense_prefill(
    model: Any, prompt_ids: torch.Tensor, continuation: torch.Tensor
) -> tuple[DensePrefill, list[LayerQKV]]:
    """One dense pass over prompt + continuation: the prompt's `DensePrefill` (its attention inputs and the
    logits of its last position) and the attention inputs over the whole sequence (for decode-row metrics)."""
    prompt_len, steps = prompt_ids.shape[-1], continuation.shape[-1]
    ids = torch.cat([prompt_ids, continuation.to(prompt_ids.device)], -1)
    full, logits = capture_qkv(model, ids, logits_to_keep=steps + 1)
    return DensePrefill(truncate(full, prompt_len), logits[0]), full


def continuation_logits(
    model: Any,
    prompt_ids: torch.Tensor,
    continuation: torch.Tensor,
    method: SparseMethod,
    dense: DensePrefill | None = None,
) -> tuple[torch.Tensor, CompressionReport]:
    """float32 (A, vocab) logits on the CPU predicting each of the A continuation tokens under `method`, and
    the session's compression report. `dense` (from `dense_prefill`) saves the prompt pass of decode/KV
    methods. Ids, positions, the rebuilt cache and the captured q/k/v go to the model's device and dtype."""
    device, dtype = _device_dtype(model)
    prompt_ids, continuation = prompt_ids.to(device), continuation.to(device)
    prompt_len, steps = prompt_ids.shape[-1], continuation.shape[-1]
    logits = []
    with torch.inference_mode(), apply(model, method) as session:
        if method.phase == "prefill" or dense is None:
            cache = DynamicCache(config=model.config)
            positions = torch.arange(prompt_len, device=device)[None]
            logits.append(_forward(model, prompt_ids, cache, positions))
            pending = dict(session.pending_kv)
        else:
            cache = dense.cache(model)
            logits.append(dense.logits.to(device))
            pending = {}
            for layer in dense.layers:
                # what a real prefill hands select_kv: the model's dtype (the float32 capture is exact)
                keep = session.method.select_kv(
                    layer.query.to(device, dtype),
                    layer.key.to(device, dtype),
                    layer.value.to(device, dtype),
                    layer_idx=layer.layer_idx,
                    scaling=layer.scaling,
                    stats=session.report.layer(layer.layer_idx, "kv"),
                )
                if keep is not None:
                    pending[layer.layer_idx] = keep
        session.pending_kv.clear()
        if pending:
            compress_cache(cache, pending, session.method)
        for t in range(steps - 1):
            token = continuation[..., t].reshape(1, 1)
            positions = torch.tensor([[prompt_len + t]], device=device)
            logits.append(_forward(model, token, cache, positions))
    return torch.stack([x.float() for x in logits]).cpu(), session.report


def kl_and_agreement(dense: torch.Tensor, sparse: torch.Tensor) -> tuple[float, float]:
    """Mean KL(dense || sparse) in nats over positions, and the share of positions whose argmax agrees."""
    log_d, log_s = dense.log_softmax(-1), sparse.log_softmax(-1)
    kl = (log_d.exp() * (log_d - log_s)).sum(-1)
    agree = (dense.argmax(-1) == sparse.argmax(-1)).float()
    return float(kl.mean()), float(agree.mean())
