"""How much of dense attention a selection keeps: attention-mass recall and output error, per head.

Computed a chunk of query rows at a time from the dense softmax, so a 32k-token layer never needs an L x L
tensor, and for many selections at once: attention restricted to a set of keys is the dense softmax
renormalised on that set, so each selection costs one masked product, not another softmax. Mass recall is
the share of each row's dense softmax mass on the selected keys (1 = nothing of weight dropped); output
error is ||o_sparse - o_dense|| / ||o_dense|| over all rows of a head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sparse_eval.backends.pattern import BlockPattern

ROW_CHUNK = 256
_TINY_MASS = 1e-6  # below this the renormalised dense softmax loses precision: recompute those rows exactly


@dataclass
class Fidelity:
    """Accumulated per-head sums over query rows; float64 (H,) tensors."""

    mass: torch.Tensor
    err_sq: torch.Tensor
    ref_sq: torch.Tensor
    rows: int

    def __add__(self, other: Fidelity) -> Fidelity:
        return Fidelity(
            self.mass + other.mass,
            self.err_sq + other.err_sq,
            self.ref_sq + other.ref_sq,
            self.rows + other.rows,
        )

    @property
    def recall(self) -> torch.Tensor:
        """Mean kept share of the dense softmax mass per head."""
        return self.mass / max(self.rows, 1)

    @property
    def rel_error(self) -> torch.Tensor:
        """||o_sparse - o_dense|| / ||o_dense|| per head (Frobenius over rows and channels)."""
        return (self.err_sq / self.ref_sq.clamp_min(1e-30)).sqrt()


def rows_fidelity(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    scaling: float,
    positions: torch.Tensor,
    keeps: Sequence[torch.Tensor],
) -> list[Fidelity]:
    """Fidelity of rows q (1, Hq, R, D) at sequence `positions` (R,) restricted to each of `keeps`
    (bool (1, Hq, R, Lk) masks over the keys k, v (1, Hkv, Lk, D)); causality (key <= position) is applied
    here. The dense softmax is computed once for all masks."""
    hq, hkv = query.shape[1], key.shape[1]
    k = key.float().repeat_interleave(hq // hkv, dim=1)
    v = value.float().repeat_interleave(hq // hkv, dim=1)
    logits = (query.float() @ k.transpose(-1, -2)) * scaling
    causal = torch.arange(key.shape[-2], device=key.device)[None, :] <= positions[:, None]
    logits = logits.masked_fill(~causal, float("-inf"))
    dense = torch.softmax(logits, dim=-1)
    o_dense = dense @ v
    ref_sq = o_dense.pow(2).sum((0, 2, 3)).double()
    out = []
    for keep in keeps:
        kept = dense * keep
        mass = kept.sum(-1, keepdim=True)  # (1, H, R, 1)
        o_sparse = (kept @ v) / mass.clamp_min(1e-30)
        tiny = (mass < _TINY_MASS).squeeze(-1)
        if bool(tiny.any()):  # exact restricted softmax where the kept mass is (nearly) nothing
            exact = torch.softmax(logits.masked_fill(~keep, float("-inf")), dim=-1).nan_to_num(0.0) @ v
            o_sparse = torch.where(tiny[..., None], exact, o_sparse)
        out.append(
            Fidelity(
                mass=mass.squeeze(-1).sum((0, 2)).double(),
                err_sq=(o_sparse - o_dense).pow(2).sum((0, 2, 3)).double(),
                ref_sq=ref_sq,
                rows=query.shape[-2],
            )
        )
    return out


def pattern_rows(pattern: BlockPattern, start: int, stop: int) -> torch.Tensor:
    """Rows start..stop-1 of the pattern as a bool (B, H, rows, L) mask (tiles and columns; not causal)."""
    L, bq, bk = pattern.seq_len, pattern.q_block, pattern.kv_block
    rows = torch.arange(start, stop, device=pattern.blocks.device)
    mask = pattern.blocks[..., rows // bq, :].repeat_interleave(bk, dim=-1)[..., :L]
    if pattern.columns is not None and pattern.columns.numel():
        cols = torch.zeros(*pattern.columns.shape[:2], L + 1, dtype=torch.bool, device=mask.device)
        cols.scatter_(-1, pattern.columns.clamp(max=L), True)
        mask = mask | cols[..., None, :L]
    return mask


def patterns_fidelity(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    patterns: Sequence[BlockPattern],
    scaling: float,
    chunk: int = ROW_CHUNK,
) -> list[Fidelity]:
    """Fidelity of causal prefill patterns over all L query rows, `chunk` rows at a time."""
    L = query.shape[-2]
    totals: list[Fidelity] | None = None
    for start in range(0, L, chunk):
        stop = min(L, start + chunk)
        parts = rows_fidelity(
            query[..., start:stop, :],
            key[..., :stop, :],
            value[..., :stop, :],
            scaling,
            torch.arange(start, stop, device=query.device),
            [pattern_rows(p, start, stop)[..., :stop] for p in patterns],
        )
        totals = parts if totals is None else [t + p for t, p in zip(totals, parts, strict=True)]
    return totals or []


def pattern_fidelity(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, pattern: BlockPattern, scaling: float
) -> Fidelity:
    """Fidelity of one causal prefill pattern."""
    return patterns_fidelity(query, key, value, [pattern], scaling)[0]
