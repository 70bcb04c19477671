"""An oracle for KV eviction: SnapKV's rule with the scores it tries to predict.

SnapKV ranks prompt positions by the attention of the prompt's last queries (the observation window),
hoping later tokens attend the same positions. The oracle ranks them by the attention the answer tokens
actually pay (captured in a dense pass over prompt + answer), keeps the same number of positions and, by
default, the same forced sinks and recent tokens. If the oracle stays close to dense where SnapKV does not,
the loss comes from the estimate, not from the budget, the pooling or the cache rewrite.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from sparse_eval.compression import LayerStats
from sparse_eval.fidelity.capture import LayerQKV
from sparse_eval.fidelity.model_eval import DensePrefill, continuation_logits, kl_and_agreement
from sparse_eval.methods.snapkv import SnapKV, kv_capacity, pool_scores, snapkv_select

ORACLE_VARIANTS = {
    "oracle_snapkv": {},  # SnapKV's forced sinks, recent tokens and pooling
    "oracle_snapkv:sink=0,local=0,pool_kernel=1": {"sink": 0, "local": 0, "pool_kernel": 1},
}


def answer_attention(layers: list[LayerQKV], prompt_len: int) -> dict[int, torch.Tensor]:
    """Per layer, the mean attention (over answer rows and the query heads of each GQA group) that the rows
    after `prompt_len` pay to each prompt position: (1, Hkv, prompt_len) float32."""
    out = {}
    for layer in layers:
        q, k = layer.query[..., prompt_len:, :].float(), layer.key.float()
        hq, hkv, L = q.shape[1], k.shape[1], k.shape[-2]
        logits = (q @ k.repeat_interleave(hq // hkv, dim=1).transpose(-1, -2)) * layer.scaling
        pos = torch.arange(L, device=k.device)
        future = pos[None, :] > pos[prompt_len:, None]
        probs = torch.softmax(logits.masked_fill(future, float("-inf")), dim=-1)[..., :prompt_len]
        out[layer.layer_idx] = probs.mean(-2).reshape(1, hkv, hq // hkv, prompt_len).mean(2)
    return out


@dataclass
class OracleSnapKV(SnapKV):
    """SnapKV whose position scores are given (`scores[layer_idx]`, (1, Hkv, L)), not estimated."""

    scores: dict[int, torch.Tensor] = field(default_factory=dict, repr=False, compare=False)

    name: ClassVar[str] = "oracle_snapkv"

    def select_kv(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        *,
        layer_idx: int,
        scaling: float,
        stats: LayerStats,
    ) -> torch.Tensor:
        length = key.shape[-2]
        capacity = kv_capacity(length, self.compression)
        scores = pool_scores(self.scores[layer_idx].to(key.device), self.pool_kernel)
        indices = snapkv_select(scores, capacity, self.sink, self.local)
        kept = torch.full(indices.shape[:2], indices.shape[-1], dtype=torch.long, device=indices.device)
        self._remember(layer_idx, kept, length, stats)
        return indices


def oracle_fidelity(
    tallies: Any,
    model: Any,
    source: str,
    prompt_ids: torch.Tensor,
    answer_ids: torch.Tensor,
    dense: DensePrefill,
    full: list[LayerQKV],
    compressions: Sequence[float],
    progress: Callable[[str], None] | None = None,
) -> None:
    """Add next-token KL and agreement of the oracle variants to `tallies` (runner's accumulators);
    `progress` hears of each (variant, compression) as it finishes (each is a model run)."""
    from sparse_eval.registry import get_method

    scores = answer_attention(full, prompt_ids.shape[-1])
    reference, _ = continuation_logits(model, prompt_ids, answer_ids, get_method("dense"), dense)
    total, done = len(ORACLE_VARIANTS) * len(compressions), 0
    for label, kwargs in ORACLE_VARIANTS.items():
        for c in compressions:
            method = OracleSnapKV(compression=c, scores=scores, backend="reference", **kwargs)
            logits, _ = continuation_logits(model, prompt_ids, answer_ids, method, dense)
            kl, agree = kl_and_agreement(reference, logits)
            tally = tallies[(source, prompt_ids.shape[-1], label, c)]
            tally.kl.append(kl)
            tally.agree.append(agree)
            tally.model_achieved.append(c)
            done += 1
            if progress is not None:
                progress(f"oracle {done}/{total}: {label} c={c:g}: KL {kl:.3f}, agreement {agree:.2f}")
