"""On synthetic attention with sinks, a RoPE local band, salient columns and far needles (random q/k hide all
of these), every prefill method at the same achieved compression keeps its output error under a stated
bound, and Block-Sparse keeps the sink tile in every query row. The pre-audit Block-Sparse rule (only the
diagonal forced, 128 x 64 tiles) breaks its bound on the same input: this is the test that would have
caught it.

Measured at L = 4096, c = 5, 4 query / 1 KV heads, d = 32, seed 0 (and seed 1), output error vs dense:
vertical_slash 0.186 (0.185), block_sparse 0.391 (0.322), flexprefill with min_budget=256 0.708 (0.673),
pre-audit block_sparse 0.804 (0.893). FlexPrefill's budget floor of 2 x 512 tokens cannot reach 5x at 4k, so
its minimum budget is halved here; its 128 x 128 tiles make it the least precise prefill method.
"""

from __future__ import annotations

import pytest
import torch

from sparse_eval import get_method
from sparse_eval.backends.pattern import attended_pairs
from sparse_eval.compression import causal_pairs
from sparse_eval.fidelity.metrics import patterns_fidelity
from sparse_eval.fidelity.synthetic import structured_qkv

L, HEADS, C = 4096, 4, 5.0
BOUNDS = {  # method, its arguments, error bound at c = 5
    "vertical_slash": ({}, 0.3),
    "block_sparse": ({}, 0.5),
    "flexprefill": ({"min_budget": 256}, 0.8),
}
PRE_AUDIT = {"q_block_size": 128, "block_size": 64, "sink_blocks": 0, "local_blocks": 0}


@pytest.fixture(scope="module")
def structured():
    return structured_qkv(L, heads=HEADS, kv_heads=1, dim=32, seed=0)


@pytest.fixture(scope="module")
def scored(structured):
    q, k, v, scaling = structured
    methods = {name: get_method(name, compression=C, **kwargs) for name, (kwargs, _) in BOUNDS.items()}
    methods["pre_audit_block_sparse"] = get_method("block_sparse", compression=C, **PRE_AUDIT)
    patterns = {name: m.select(q, k, scaling=scaling, layer_idx=0) for name, m in methods.items()}
    fidelity = patterns_fidelity(q, k, v, list(patterns.values()), scaling)
    dense = causal_pairs(L) * HEADS
    return {
        name: (pattern, dense / float(attended_pairs(pattern).sum()), fid)
        for (name, pattern), fid in zip(patterns.items(), fidelity, strict=True)
    }


@pytest.mark.parametrize("name", list(BOUNDS))
def test_prefill_method_error_stays_under_its_bound_at_equal_compression(scored, name):
    _, achieved, fid = scored[name]
    assert achieved == pytest.approx(C, rel=0.1)  # equal achieved compression
    assert float(fid.rel_error.mean()) < BOUNDS[name][1]


def test_pre_audit_block_sparse_rule_breaks_the_bound(scored):
    _, achieved, fid = scored["pre_audit_block_sparse"]
    assert achieved == pytest.approx(C, rel=0.1)
    assert float(fid.rel_error.mean()) > BOUNDS["block_sparse"][1] + 0.2
    assert float(fid.recall.mean()) < float(scored["block_sparse"][2].recall.mean())


@pytest.mark.parametrize("kwargs", [{}, {"q_block_size": 128, "block_size": 64}])
def test_block_sparse_keeps_the_sink_tile_in_every_query_row(structured, kwargs):
    q, k, _, scaling = structured
    pattern = get_method("block_sparse", compression=20, **kwargs).select(q, k, scaling=scaling, layer_idx=0)
    assert bool(pattern.blocks[..., 0].all())
    bq, bk = pattern.q_block, pattern.kv_block
    rows = torch.arange(1, pattern.num_q_blocks)
    assert bool(pattern.blocks[..., rows, rows * bq // bk - 1].all())  # the local tile before the diagonal


def test_pre_audit_rule_drops_the_sink_tile(scored):
    pattern = scored["pre_audit_block_sparse"][0]
    assert not bool(pattern.blocks[..., 0].all())
