"""Compression accounting: the one knob every method shares, and the per-run report of what was achieved.

Compression ratio = dense attended (query, key) pairs, or dense KV tokens, divided by the sparse ones.
For causal prefill of length L a head attends L(L+1)/2 pairs densely; a decode step attends every cached key;
KV compression keeps some cached tokens per KV head. Methods record what they actually attended through a
`LayerStats` handed to them, so the numbers come back to the caller instead of living in a global list.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

PHASES = ("prefill", "decode", "kv")

SHORTFALL_RATIO = 0.8
"""Achieved / requested compression below which a run is flagged: a method's fixed costs at this length
(forced sink and local tiles, minimum budgets, tile granularity) kept it far from the request."""


class CompressionShortfallWarning(RuntimeWarning):
    """The achieved compression of a phase is far below the requested one (see `SHORTFALL_RATIO`)."""


def check_compression(compression: float) -> float:
    """Validate the compression knob: a finite number >= 1 (1 means dense)."""
    try:
        value = float(compression)
    except (TypeError, ValueError):
        raise ValueError(f"compression must be a number >= 1 (1 = dense), got {compression!r}") from None
    if not math.isfinite(value) or value < 1.0:
        raise ValueError(f"compression must be a finite number >= 1 (1 = dense), got {compression!r}")
    return value


def causal_pairs(q_len: int, k_len: int | None = None) -> int:
    """Pairs a dense causal head attends when its `q_len` queries are the last of `k_len` keys."""
    k_len = q_len if k_len is None else k_len
    if k_len < q_len:
        raise ValueError(f"k_len ({k_len}) must be >= q_len ({q_len}) for causal attention")
    offset = k_len - q_len
    return q_len * offset + q_len * (q_len + 1) // 2


def head_counts(heads: int, value: float) -> torch.Tensor:
    """(heads,) float64 counts `value` on the host, for `LayerStats.add`. Counts built from Python numbers stay
    on the CPU whatever the layer's device (they never meet its q/k/v, also when the layers of a model sit on
    different GPUs) and cost no kernel launch per decode step; float64 keeps pair counts of long prompts exact."""
    return torch.full((heads,), float(value), dtype=torch.float64, device="cpu")


def pair_budget(seq_len: int, compression: float) -> int:
    """Attended pairs a fixed-budget prefill method may use per head: dense causal pairs / compression."""
    return math.ceil(causal_pairs(seq_len) / check_compression(compression))


@dataclass
class LayerStats:
    """Dense and sparse counts for one layer and one phase, per head (query heads for attention phases, KV
    heads for KV compression). Counts are accumulated as float64 tensors where the first counts came from (the
    layer's device for counts a method computed, the CPU for counts from Python numbers, see `head_counts`),
    so recording costs no host synchronisation; they are read back only when a report is asked for."""

    layer_idx: int
    phase: str
    dense: torch.Tensor | None = None
    sparse: torch.Tensor | None = None
    calls: int = 0

    def add(self, dense: torch.Tensor | float, sparse: torch.Tensor | float) -> None:
        """Add per-head counts (shape (H,) or scalars broadcast to the heads already recorded)."""
        where = dense.device if isinstance(dense, torch.Tensor) else "cpu"  # a Python number: a host count
        d = torch.as_tensor(dense, dtype=torch.float64, device=where).reshape(-1)
        s = torch.as_tensor(sparse, dtype=torch.float64, device=d.device).reshape(-1)
        d, s = torch.broadcast_tensors(d, s)
        if self.dense is None or self.sparse is None:
            self.dense, self.sparse = d.clone(), s.clone()
        else:
            self.dense = self.dense + d.to(self.dense.device)
            self.sparse = self.sparse + s.to(self.sparse.device)
        self.calls += 1

    def merge(self, other: LayerStats) -> None:
        """Add another slot's counts (and its number of calls): a batch row's stats into the session's."""
        if other.dense is None or other.sparse is None:
            return
        calls = self.calls + other.calls
        self.add(other.dense, other.sparse)
        self.calls = calls

    def per_head(self) -> list[float]:
        """Achieved compression of each head (dense / sparse)."""
        if self.dense is None or self.sparse is None:
            return []
        return (self.dense.cpu() / self.sparse.cpu().clamp_min(1e-12)).tolist()

    def totals(self) -> tuple[float, float]:
        """(dense, sparse) summed over heads."""
        if self.dense is None or self.sparse is None:
            return 0.0, 0.0
        return float(self.dense.sum().item()), float(self.sparse.sum().item())

    @property
    def achieved_compression(self) -> float:
        dense, sparse = self.totals()
        return dense / sparse if sparse > 0 else float("nan")


@dataclass
class CompressionReport:
    """Everything one `sparse_eval.apply` session measured, keyed by (phase, layer)."""

    method: str = ""
    target_compression: float = 1.0
    layers: dict[tuple[str, int], LayerStats] = field(default_factory=dict)

    def layer(self, layer_idx: int, phase: str) -> LayerStats:
        """The (created on first use) stats slot for one layer and phase."""
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        key = (phase, int(layer_idx))
        if key not in self.layers:
            self.layers[key] = LayerStats(layer_idx=int(layer_idx), phase=phase)
        return self.layers[key]

    def phases(self) -> list[str]:
        """Phases that recorded anything, in canonical order."""
        seen = {phase for (phase, _), stats in self.layers.items() if stats.calls}
        return [p for p in PHASES if p in seen]

    def achieved_compression(self, phase: str = "prefill") -> float:
        """Overall dense / sparse for one phase, summed over layers and heads (NaN if nothing recorded)."""
        dense = sparse = 0.0
        for (p, _), stats in self.layers.items():
            if p == phase and stats.calls:
                d, s = stats.totals()
                dense, sparse = dense + d, sparse + s
        return dense / sparse if sparse > 0 else float("nan")

    def shortfall(self, phase: str) -> str | None:
        """A sentence saying the phase achieved far less than the requested compression, or None if it
        achieved at least `SHORTFALL_RATIO` of it (or recorded nothing, or the request was dense)."""
        achieved = self.achieved_compression(phase)
        target = self.target_compression
        if target <= 1.0 or not math.isfinite(achieved) or achieved >= SHORTFALL_RATIO * target:
            return None
        return (
            f"{self.method} achieved {achieved:.2f}x {phase} compression where {target:g}x was requested: at "
            "this length its fixed costs (forced sink/local tiles or tokens, minimum budgets, tile size) leave "
            "no room for the requested budget; compare methods at their achieved compression (the report has "
            "per-layer values; floors are listed in sparse_eval/README.md)"
        )

    def per_layer(self, phase: str = "prefill") -> dict[int, float]:
        """Achieved compression of each layer for one phase."""
        return {
            idx: stats.achieved_compression
            for (p, idx), stats in sorted(self.layers.items(), key=lambda kv: kv[0][1])
            if p == phase and stats.calls
        }

    def per_head(self, phase: str = "prefill") -> dict[int, list[float]]:
        """Achieved compression of each head of each layer for one phase."""
        return {
            idx: stats.per_head()
            for (p, idx), stats in sorted(self.layers.items(), key=lambda kv: kv[0][1])
            if p == phase and stats.calls
        }

    def merge(self, other: CompressionReport) -> None:
        """Add everything `other` recorded into this report (per phase, layer and head)."""
        for (phase, layer_idx), stats in other.layers.items():
            self.layer(layer_idx, phase).merge(stats)

    def reset(self) -> None:
        """Forget everything recorded (e.g. between documents of an evaluation)."""
        self.layers.clear()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: overall, per-layer and per-head achieved compression for each phase."""
        out: dict[str, Any] = {"method": self.method, "target_compression": self.target_compression}
        for phase in self.phases():
            out[phase] = {
                "achieved_compression": self.achieved_compression(phase),
                "per_layer": {str(k): v for k, v in self.per_layer(phase).items()},
                "per_head": {str(k): v for k, v in self.per_head(phase).items()},
            }
        return out

    def summary(self) -> str:
        """One line per phase, for logs."""
        parts = [
            f"{phase}: {self.achieved_compression(phase):.2f}x over {len(self.per_layer(phase))} layers"
            for phase in self.phases()
        ]
        body = "; ".join(parts) if parts else "nothing recorded"
        return f"{self.method} (target {self.target_compression:g}x): {body}"
