"""Which phase each sparse method changes, and what that phase costs under it.

The table mirrors `sparse_eval`'s methods without importing it (the analysis must stay torch-free). The paper
groups KV-cache eviction (SnapKV, Ada-SnapKV) with decoding, so phases here are the paper's two: "prefill" and
"decode"; dense runs are the baseline of both. An unknown method needs `--phase METHOD=prefill|decode`.
"""

from __future__ import annotations

from collections.abc import Mapping

from longtasks.analysis.arch import Arch
from longtasks.analysis.cost import (
    DEFAULT_COST,
    CostOptions,
    block_sparse_indexing,
    decode_memory,
    prefill_flops,
    quest_indexing,
    vertical_slash_indexing,
    vs_budget,
)

DENSE = "dense"
PHASES = ("prefill", "decode")
METHOD_PHASES: dict[str, str] = {
    "vertical_slash": "prefill",
    "block_sparse": "prefill",
    "flexprefill": "prefill",
    "quest": "decode",
    "snapkv": "decode",
    "ada_snapkv": "decode",
}
REPORT_PHASES = {"vertical_slash": "prefill", "block_sparse": "prefill", "flexprefill": "prefill",
                 "quest": "decode", "snapkv": "kv", "ada_snapkv": "kv"}  # fmt: skip
"""The phase key under which sparse-hf's compression report records each method's achieved compression."""


def method_phase(method: str, overrides: Mapping[str, str] | None = None) -> str:
    """The paper's phase of `method` ("dense" for the baseline)."""
    if method == DENSE:
        return DENSE
    table = {**METHOD_PHASES, **(overrides or {})}
    if method not in table:
        raise ValueError(
            f"unknown sparse method {method!r}: known are {sorted(METHOD_PHASES)}; "
            "say which phase it changes with --phase METHOD=prefill|decode"
        )
    phase = table[method]
    if phase not in PHASES:
        raise ValueError(f"phase of {method!r} must be one of {PHASES}, got {phase!r}")
    return phase


def indexing_cost(
    method: str, phase: str, arch: Arch, length: int, density: float, options: CostOptions
) -> float:
    """Importance-estimation overhead of `method` in `phase` units (FLOPs for prefill, elements for decode)."""
    if not options.indexing or method == DENSE:
        return 0.0
    if phase == "prefill" and method in ("vertical_slash", "flexprefill"):
        k = vs_budget(length, density)
        return vertical_slash_indexing(arch, length, k, k, options)
    if phase == "prefill" and method == "block_sparse":
        return block_sparse_indexing(arch, length, options)
    if phase == "decode" and method == "quest":
        return quest_indexing(arch, length, options)
    return 0.0  # SnapKV-style eviction: scoring happens once after prefill, decoding reads the smaller cache


def phase_cost(
    arch: Arch, method: str, phase: str, length: int, compression: float, options: CostOptions = DEFAULT_COST
) -> float:
    """Cost of one configuration on the isoCost x axis: prefill FLOPs or decode memory elements per step."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    if not compression >= 1.0:
        raise ValueError(f"compression must be >= 1, got {compression!r}")
    density = 1.0 / float(compression)
    extra = indexing_cost(method, phase, arch, length, density, options)
    if phase == "prefill":
        return prefill_flops(arch, length, density=density, options=options, indexing=extra).total
    return decode_memory(arch, length, density=density, options=options, indexing=extra).total
