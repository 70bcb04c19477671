"""The paper's cost model (PAPER_NOTES §1.2, v3 App. B.1, Eqs. 1-10): prefill FLOPs and decode memory
traffic from the architecture, length L, batch size B and attention density rho = 1 / compression.

Two conventions for where sparsity acts in prefill, because the paper is not self-consistent (§1.3):

- ``"quadratic"`` (Eq. 3 as printed, the default): rho scales only the L^2 terms (QK^T, softmax, AV).
- ``"attention"``: rho scales the whole attention block, projections included. This is what the speedups
  quoted with Fig. 12 (1.5x / 2.2x / 2.8x at 5x sparsity) correspond to: Amdahl's law on the attention share.

Sliding-window models (Gemma 3: 5 of every 6 layers see the last 1024 tokens, PAPER_NOTES §4.1): a local
layer's queries attend to, and its KV cache holds, min(L, W) tokens instead of L, and rho (with the indexing
overheads) applies only to the global layers, since the paper sparsifies only those. A model without local
layers gets Eqs. 1-10 exactly as printed.

Decode costs are element counts read per generated token (multiply by 2 for bf16 bytes). Indexing (importance
estimation) overheads are Eqs. 9-10; the paper prints the hidden size d in them where a per-head cost would use
d_h, so that is an option too (`indexing_dim`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from longtasks.analysis.arch import Arch

Convention = Literal["quadratic", "attention"]
IndexingDim = Literal["d", "head_dim"]
CONVENTIONS: tuple[str, ...] = ("quadratic", "attention")


@dataclass(frozen=True)
class CostOptions:
    """Every assumption of the cost model, with the paper's values as defaults."""

    convention: Convention = "quadratic"
    batch_size: int = 1
    indexing: bool = True
    """Add the methods' importance-estimation overheads (Eqs. 9-10 and the inferred ones below)."""
    indexing_dim: IndexingDim = "d"
    """Dimension in Eqs. 9-10: "d" as printed, or "head_dim" (what a per-head score would cost)."""
    vs_window: int = 256
    """Queries whose attention estimates Vertical-Slash / FlexPrefill importance (q in Eq. 9)."""
    quest_page: int = 16
    block_size: int = 16
    """Block-Sparse tile size (the seed's chunks of 16)."""

    def __post_init__(self) -> None:
        if self.convention not in CONVENTIONS:
            raise ValueError(f"cost convention must be one of {CONVENTIONS}, got {self.convention!r}")
        if self.indexing_dim not in ("d", "head_dim"):
            raise ValueError(f"indexing_dim must be 'd' or 'head_dim', got {self.indexing_dim!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def with_(self, **changes: object) -> CostOptions:
        return replace(self, **changes)  # type: ignore[arg-type]


DEFAULT_COST = CostOptions()
"""The paper's settings (a shared instance: the options are frozen)."""


@dataclass(frozen=True)
class PrefillFlops:
    """Eq. 1 broken into its terms (already multiplied by the batch size)."""

    embedding: float
    attention_linear: float
    attention_quadratic: float
    mlp: float
    logits: float
    indexing: float = 0.0

    @property
    def attention(self) -> float:
        return self.attention_linear + self.attention_quadratic

    @property
    def total(self) -> float:
        return self.embedding + self.attention + self.mlp + self.logits + self.indexing


@dataclass(frozen=True)
class DecodeMemory:
    """Eq. 6 broken into its terms: elements read per decoding step."""

    weights: float
    kv_cache: float
    indexing: float = 0.0

    @property
    def total(self) -> float:
        return self.weights + self.kv_cache + self.indexing


def check_density(density: float) -> float:
    if not 0.0 < density <= 1.0:
        raise ValueError(f"attention density must be in (0, 1] (1 / compression), got {density!r}")
    return float(density)


def _scores(arch: Arch, queries: float, keys: float) -> float:
    """Eq. 3's quadratic part for one layer: QK^T, softmax and AV of `queries` against `keys` each (the paper
    counts the full L^2, no causal halving)."""
    h, dh = arch.n_heads, arch.head_dim
    return 2 * h * queries * keys * dh + 3 * h * queries * keys + 2 * h * queries * keys * dh


def prefill_flops(
    arch: Arch,
    length: int,
    *,
    density: float = 1.0,
    options: CostOptions = DEFAULT_COST,
    indexing: float = 0.0,
) -> PrefillFlops:
    """Eqs. 1-5 (local layers: L keys per query become min(L, W)); `indexing` is added as given (Eq. 9 already
    includes the batch size)."""
    rho, L, b = check_density(density), float(length), options.batch_size
    d, dh, nkv = arch.hidden_size, arch.head_dim, arch.n_kv_heads
    linear = arch.n_global_layers * 2 * L * d * (d + 2 * dh * nkv + d)
    quadratic = arch.n_global_layers * _scores(arch, L, L)
    if options.convention == "attention":
        linear *= rho
    quadratic *= rho
    if arch.n_local_layers:  # dense: the sliding window is not sparsified
        linear += arch.n_local_layers * 2 * L * d * (d + 2 * dh * nkv + d)
        quadratic += arch.n_local_layers * _scores(arch, L, float(arch.local_span(length)))
    return PrefillFlops(
        embedding=b * 2 * L * d,
        attention_linear=b * linear,
        attention_quadratic=b * quadratic,
        mlp=b * arch.n_layers * (6 * L * d * arch.intermediate_size + 2 * L * arch.intermediate_size),
        logits=b * 2 * L * d * arch.vocab_size,
        indexing=indexing,
    )


def decode_memory(
    arch: Arch,
    length: int,
    *,
    density: float = 1.0,
    options: CostOptions = DEFAULT_COST,
    indexing: float = 0.0,
) -> DecodeMemory:
    """Eqs. 6-8 (elements; 4d^2 does not discount GQA, as printed); a local layer's cache holds min(L, W)
    tokens, read in full."""
    rho, d = check_density(density), arch.hidden_size
    weights = arch.n_layers * (4 * d**2 + 3 * d * arch.intermediate_size) + d * arch.vocab_size + d
    kv = arch.n_global_layers * 2 * float(length) * arch.head_dim * arch.n_kv_heads * rho
    if arch.n_local_layers:
        kv += arch.n_local_layers * 2 * float(arch.local_span(length)) * arch.head_dim * arch.n_kv_heads
    return DecodeMemory(weights=weights, kv_cache=options.batch_size * kv, indexing=indexing)


def _index_dim(arch: Arch, options: CostOptions) -> int:
    return arch.hidden_size if options.indexing_dim == "d" else arch.head_dim


def vertical_slash_indexing(
    arch: Arch, length: int, verticals: float, slashes: float, options: CostOptions = DEFAULT_COST
) -> float:
    """Eq. 9: B·N·h·[2·d·L·q + 3Lq + 2Lq + 2L·log2(L) + (L/64)·(k_v + k_s)] FLOPs, N = global layers."""
    L, q = float(length), float(options.vs_window)
    per_head = (
        2 * _index_dim(arch, options) * L * q
        + 5 * L * q
        + 2 * L * math.log2(L)
        + L / 64 * (verticals + slashes)
    )
    return options.batch_size * arch.n_global_layers * arch.n_heads * per_head


def vs_budget(length: int, density: float) -> float:
    """Verticals (= slashes) that give `density` (INFERENCE, not in the paper): a causal column covers ~L/2
    pairs and a diagonal ~L, so k verticals + k slashes cover ~1.5·k·L of the L^2/2 pairs: k = density·L/3."""
    return check_density(density) * float(length) / 3.0


def block_sparse_indexing(arch: Arch, length: int, options: CostOptions = DEFAULT_COST) -> float:
    """Not given by the paper (INFERENCE): mean-pool Q and K into tiles (2·L·d_h adds per head) and score every
    query tile against every key tile (2·(L/b)^2·d_h), per head, global layer and batch element."""
    L, b, dh = float(length), float(options.block_size), arch.head_dim
    per_head = 2 * L * dh + 2 * (L / b) ** 2 * dh
    return options.batch_size * arch.n_global_layers * arch.n_heads * per_head


def quest_indexing(arch: Arch, length: int, options: CostOptions = DEFAULT_COST) -> float:
    """Eq. 10: B·N·n_kv·2·d·L/p elements (page min and max keys read every step), N = global layers."""
    dim = _index_dim(arch, options)
    layers = arch.n_global_layers
    return options.batch_size * layers * arch.n_kv_heads * 2 * dim * float(length) / options.quest_page


def attention_share(arch: Arch, length: int, options: CostOptions = DEFAULT_COST) -> float:
    """Share of dense prefill FLOPs spent in attention, projections included (the paper's Fig. 12 share)."""
    flops = prefill_flops(arch, length, options=options)
    return flops.attention / flops.total


def kv_share(arch: Arch, length: int, options: CostOptions = DEFAULT_COST) -> float:
    """Share of dense decode memory traffic spent reading the KV cache (the paper's App. B.3 share)."""
    memory = decode_memory(arch, length, options=options)
    return memory.kv_cache / memory.total
