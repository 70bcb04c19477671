"""Synthetic q/k/v with the structure real attention has, for fidelity checks that run anywhere.

Random q/k spread every query's mass almost evenly, so any selection keeps about 1/c of it and a rule that
misses the sink or the local band looks as good as one that keeps them. This generator builds the four
patterns sparse methods are designed around, each query head mixing them with its own strengths:

* a local band from RoPE: queries and keys share a vector on mid-to-high-frequency rotary pairs, so
  q_i . k_j = sum_p |a_p|^2 cos((i - j) theta_p) peaks at i = j and fades within tens of tokens;
* attention sinks: the first keys carry a direction that every query of the head carries too;
* salient columns: a few keys anywhere carry a second shared direction (vertical lines);
* far needle pairs: late queries that each match one key at least a quarter of the sequence earlier
  through a private direction (what only a query-aware selection finds).
Sinks, columns and needles live on the low-frequency rotary pairs, orthogonal to the band, and are added
after the rotation (to what attention sees). Logit strengths grow with log(L / 4096), so the share of the
mass each pattern holds stays about the same at every length (as sinks and bands do in real models); at
4k the default strengths give mean shares near those measured on SmolLM2's middle and upper layers
(sinks ~0.3, 64-token local band ~0.3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Structure:
    """Logit strengths at 4k tokens (scaled q.k above the noise) and counts of the synthetic patterns."""

    local: float = 10.0
    sink: float = 9.0
    column: float = 7.0
    needle: float = 14.0
    noise: float = 0.3
    sinks: int = 4
    columns_per_4k: int = 16
    needles_per_4k: int = 8
    rope_base: float = 10000.0


def rope(x: torch.Tensor, base: float) -> torch.Tensor:
    """Rotary embedding (rotate-half layout, as Llama/Qwen) of x (B, H, L, D) at positions 0..L-1."""
    L, D = x.shape[-2], x.shape[-1]
    inv = base ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    angles = torch.arange(L, dtype=torch.float64)[:, None] * inv[None, :]
    cos, sin = torch.cat([angles.cos()] * 2, -1).to(x.dtype), torch.cat([angles.sin()] * 2, -1).to(x.dtype)
    half = D // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


def _subspaces(dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel indices of the band's rotary pairs (the second eighth of the frequencies: wavelengths of
    ~10-100 tokens with base 10000) and of the low-frequency pairs (both channels of each pair)."""
    half, quarter, eighth = dim // 2, dim // 4, dim // 8
    high = torch.cat([torch.arange(eighth, quarter), half + torch.arange(eighth, quarter)])
    low = torch.cat([torch.arange(quarter, half), half + torch.arange(quarter, half)])
    return high, low


def structured_qkv(
    length: int,
    *,
    heads: int = 8,
    kv_heads: int = 2,
    dim: int = 64,
    seed: int = 0,
    structure: Structure = Structure(),
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """(q (1, heads, L, dim), k and v (1, kv_heads, L, dim), scaling) with sinks, a RoPE local band,
    salient columns and far needle pairs; a pure function of its arguments (built on the CPU in float32)."""
    if heads % kv_heads or dim % 8 or length < 8:
        raise ValueError(
            f"need heads % kv_heads == 0, dim % 8 == 0 and length >= 8; got {heads}, {kv_heads}, {dim}, {length}"
        )
    g = torch.Generator().manual_seed(seed)
    s = structure
    scaling = dim**-0.5
    group = heads // kv_heads
    shift = math.log(length / 4096)
    high, low = _subspaces(dim)
    mix = 0.5 + torch.rand(heads, 4, generator=g)  # per query head weight of band, sink, columns, needles

    def logit_norm(logit: float) -> float:
        """Norm of equal q and k components whose scaled dot product is `logit`."""
        return math.sqrt(max(logit, 0.0) / scaling)

    q = torch.randn(1, heads, length, dim, generator=g) * math.sqrt(s.noise)
    k = torch.randn(1, kv_heads, length, dim, generator=g) * math.sqrt(s.noise)
    band = torch.zeros(kv_heads, dim)
    a = torch.randn(kv_heads, dim // 8, generator=g)
    band[:, high] = torch.cat([a, a], -1)  # equal weight on both channels of each rotary pair
    band = band / band.norm(dim=-1, keepdim=True) * logit_norm(s.local + 2 * shift)
    k = k + band[None, :, None, :]
    q = q + (band.repeat_interleave(group, 0) * mix[:, 0:1])[None, :, None, :]
    q, k = rope(q, s.rope_base), rope(k, s.rope_base)

    # An orthonormal basis of the low-frequency channels: sink and column directions, then needle ones.
    basis = torch.zeros(kv_heads, dim, low.numel())
    for h in range(kv_heads):
        basis[h, low] = torch.linalg.qr(torch.randn(low.numel(), low.numel(), generator=g))[0]
    sink_dir, col_dir = basis[..., 0], basis[..., 1]
    n_sinks = min(s.sinks, length)
    sink_norm = logit_norm(s.sink + shift)
    k[0, :, :n_sinks] += sink_norm * sink_dir[:, None, :] * torch.linspace(1.0, 0.8, n_sinks)[None, :, None]
    q += sink_norm * (sink_dir.repeat_interleave(group, 0) * mix[:, 1:2])[None, :, None, :]
    n_cols = max(1, s.columns_per_4k * length // 4096)
    cols = torch.randint(n_sinks, length, (kv_heads, n_cols), generator=g)
    weights = 0.6 + 0.8 * torch.rand(kv_heads, n_cols, generator=g)
    col_norm = logit_norm(s.column)  # their number grows with L already
    for h in range(kv_heads):
        k[0, h, cols[h]] += col_norm * weights[h, :, None] * col_dir[h]
    q += col_norm * (col_dir.repeat_interleave(group, 0) * mix[:, 2:3])[None, :, None, :]

    n_needles = max(1, s.needles_per_4k * length // 4096)
    needle_norm = logit_norm(s.needle + shift)
    for h in range(heads):
        strength = float(mix[h, 3]) / 1.5
        kv = h // group
        for _ in range(n_needles):
            i = int(torch.randint(3 * length // 4, length, (1,), generator=g))
            j = int(torch.randint(0, max(1, i - length // 4), (1,), generator=g))
            d = basis[kv, :, 2:] @ torch.randn(basis.shape[-1] - 2, generator=g)
            d = d / d.norm()
            q[0, h, i] += needle_norm * strength * d
            k[0, kv, j] += needle_norm * d
    v = torch.randn(1, kv_heads, length, dim, generator=g)
    return q.to(device, dtype), k.to(device, dtype), v.to(device, dtype), scaling
