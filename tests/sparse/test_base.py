"""The method contract, the registry, compression accounting and the shared pattern arithmetic."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sparse_eval
from sparse_eval.backends.dense import dense_attention
from sparse_eval.backends.pattern import (
    BlockPattern,
    attended_pairs,
    column_costs,
    columns_from_mask,
    dense_mask,
    tile_kinds,
    tile_pair_counts,
)
from sparse_eval.base import SparseMethod
from sparse_eval.compression import (
    CompressionReport,
    LayerStats,
    causal_pairs,
    check_compression,
    pair_budget,
)
from sparse_eval.methods.estimation import diagonal_sums, last_query_probs, vertical_slash_scores
from sparse_eval.registry import get_method, list_methods, register_method


# --------------------------------------------------------------------------------------------- knob
@pytest.mark.parametrize("bad", [0.5, 0, -3, float("nan"), float("inf"), "ten", None])
def test_compression_must_be_a_number_at_least_one(bad):
    with pytest.raises(ValueError, match="compression"):
        check_compression(bad)


def test_causal_pairs_and_budget():
    assert causal_pairs(4) == 10
    assert causal_pairs(2, 5) == 3 + 4 + 2 - 0  # rows at positions 3 and 4 see 4 and 5 keys
    assert causal_pairs(2, 5) == 9
    assert pair_budget(4, 1) == 10
    assert pair_budget(100, 5) == math.ceil(5050 / 5)
    with pytest.raises(ValueError, match="k_len"):
        causal_pairs(5, 3)


# --------------------------------------------------------------------------------------------- registry
def test_registry_lists_prefill_methods_and_rejects_unknown_names():
    assert {"dense", "vertical_slash", "block_sparse", "flexprefill"} <= set(list_methods())
    with pytest.raises(KeyError, match=r"available: .*block_sparse"):
        get_method("vertical-slash")


def test_get_method_rejects_unknown_arguments_listing_valid_ones():
    with pytest.raises(TypeError, match=r"valid arguments: .*last_q_size"):
        get_method("vertical_slash", compression=4, window=3)


def test_method_defaults_follow_the_seed_settings():
    vs = get_method("vertical_slash")
    assert (vs.last_q_size, vs.n_sinks, vs.n_local, vs.block_size) == (256, 4, 64, 64)
    fp = get_method("flexprefill")
    assert (fp.last_q_size, fp.min_budget, fp.block_size, fp.gamma, fp.tau) == (512, 512, 128, None, 0.1)
    assert get_method("dense").compression == 1.0


def test_register_method_validates_classes():
    with pytest.raises(TypeError):
        register_method(int)  # type: ignore[arg-type]

    @dataclass
    class Nameless(SparseMethod):
        pass

    with pytest.raises(ValueError, match="name"):
        register_method(Nameless)

    @dataclass
    class Clash(SparseMethod):
        name: ClassVar[str] = "block_sparse"

    with pytest.raises(ValueError, match="already taken"):
        register_method(Clash)


def test_bad_fields_raise_clear_errors():
    with pytest.raises(ValueError, match="compression must be 1"):
        get_method("dense", compression=2)
    with pytest.raises(ValueError, match="backend"):
        get_method("block_sparse", backend="cuda")
    with pytest.raises(ValueError, match="multiple of 16"):
        get_method("block_sparse", block_size=24)
    with pytest.raises(ValueError, match="vertical_share"):
        get_method("vertical_slash", vertical_share=1.5)
    with pytest.raises(ValueError, match="not both"):
        get_method("flexprefill", compression=5, gamma=0.9)
    with pytest.raises(ValueError, match="gamma"):
        get_method("flexprefill", gamma=1.5)


@pytest.mark.parametrize(
    ("method", "knob", "value", "message"),
    [
        ("vertical_slash", "n_local", 2.5, "n_local must be a whole number, got 2.5"),
        ("vertical_slash", "block_size", 64.0, "block_size must be a whole number, got 64.0"),
        ("vertical_slash", "last_q_size", "256", "last_q_size must be a whole number, got '256'"),
        ("block_sparse", "q_block_size", True, "q_block_size must be a whole number, got True"),
        ("flexprefill", "min_budget", 300.5, "min_budget must be a whole number, got 300.5"),
        ("flexprefill", "tau", float("nan"), "tau must be a number, got nan"),
        ("flexprefill", "tau", "0.1", "tau must be a number, got '0.1'"),
        ("quest", "page_size", 16.0, "page_size must be a whole number"),
    ],
)
def test_knobs_of_the_wrong_kind_are_refused_by_name(method, knob, value, message):
    """Python callers get the knob's name at construction, not a TypeError deep inside a forward (or, for a
    NaN threshold, a silently different rule)."""
    with pytest.raises(ValueError, match=f"{method} {message}"):
        get_method(method, **{knob: value})
    get_method("flexprefill", gamma=None)  # an optional float may be None


def test_vertical_slash_keeps_a_key_for_every_query():
    with pytest.raises(ValueError, match="n_sinks >= 1 or n_local >= 1"):
        get_method("vertical_slash", compression=5, n_sinks=0, n_local=0)
    for sinks, local in ((0, 1), (1, 0)):
        get_method("vertical_slash", compression=5, n_sinks=sinks, n_local=local)


def test_flex_backend_on_cpu_tensors_is_refused():
    method = get_method("block_sparse", compression=4, backend="flex")
    with pytest.raises(ValueError, match="backend 'flex' runs on CUDA tensors, got cpu"):
        method.resolve_backend(torch.zeros(1))
    assert get_method("block_sparse", compression=4).resolve_backend(torch.zeros(1)) == "reference"


# --------------------------------------------------------------------------------------------- report
def test_report_collects_per_layer_and_per_head_compression():
    report = CompressionReport(method="x", target_compression=4)
    report.layer(0, "prefill").add(torch.tensor([100.0, 100.0]), torch.tensor([25.0, 50.0]))
    report.layer(1, "prefill").add(torch.tensor([100.0, 100.0]), torch.tensor([10.0, 15.0]))
    report.layer(0, "decode").add(torch.tensor([8.0, 8.0]), 2.0)
    report.layer(0, "kv")  # touched but never recorded: not reported
    assert report.phases() == ["prefill", "decode"]
    assert report.achieved_compression("prefill") == pytest.approx(400 / 100)
    assert report.per_layer("prefill") == {0: pytest.approx(200 / 75), 1: pytest.approx(8.0)}
    assert report.per_head("prefill")[0] == pytest.approx([4.0, 2.0])
    assert report.achieved_compression("decode") == pytest.approx(4.0)
    assert math.isnan(report.achieved_compression("kv"))
    as_dict = report.to_dict()
    assert as_dict["prefill"]["per_layer"]["1"] == pytest.approx(8.0)
    assert "decode: 4.00x" in report.summary()
    with pytest.raises(ValueError, match="phase"):
        report.layer(0, "generate")
    report.reset()
    assert report.phases() == []


def test_layer_stats_accumulate_over_calls():
    stats = LayerStats(layer_idx=3, phase="decode")
    for _ in range(3):
        stats.add(torch.tensor([10.0, 10.0]), torch.tensor([5.0, 2.0]))
    assert stats.calls == 3
    assert stats.totals() == (60.0, 21.0)
    assert stats.per_head() == pytest.approx([2.0, 5.0])


# --------------------------------------------------------------------------------------------- dense
@pytest.mark.parametrize(("q_len", "k_len"), [(7, 7), (1, 9), (3, 10)])
def test_dense_attention_is_bottom_right_causal(q_len, k_len):
    g = torch.Generator().manual_seed(q_len * 31 + k_len)
    q = torch.randn(1, 4, q_len, 8, generator=g)
    k, v = torch.randn(1, 2, k_len, 8, generator=g), torch.randn(1, 2, k_len, 8, generator=g)
    out = dense_attention(q, k, v, 0.3)
    kk, vv = k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)
    scores = (q @ kk.transpose(-1, -2)) * 0.3
    rows = torch.arange(q_len)[:, None] + (k_len - q_len)
    scores = scores.masked_fill(torch.arange(k_len)[None, :] > rows, float("-inf"))
    torch.testing.assert_close(out, torch.softmax(scores, -1) @ vv)


def test_base_method_is_dense_in_every_phase():
    method = SparseMethod(compression=3)
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, h, 12, 8, generator=g) for h in (4, 2, 2))
    report = CompressionReport()
    out = method.prefill(q, k, v, layer_idx=0, scaling=0.3, stats=report.layer(0, "prefill"))
    torch.testing.assert_close(out, dense_attention(q, k, v, 0.3))
    assert method.select_kv(q, k, v, layer_idx=0, scaling=0.3, stats=report.layer(0, "kv")) is None
    assert report.achieved_compression("prefill") == 1.0


# --------------------------------------------------------------------------------------------- tiles
@settings(max_examples=40, deadline=None)
@given(
    L=st.integers(1, 300),
    bq=st.sampled_from([16, 32, 64]),
    bk=st.sampled_from([16, 32, 64]),
)
def test_tile_pair_counts_match_a_dense_causal_mask(L, bq, bk):
    counts = tile_pair_counts(L, bq, bk, "cpu")
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    nqb, nkb = counts.shape
    padded = torch.zeros(nqb * bq, nkb * bk, dtype=torch.bool)
    padded[:L, :L] = causal
    brute = padded.unflatten(0, (nqb, bq)).unflatten(-1, (nkb, bk)).sum((1, 3))
    assert torch.equal(counts, brute)
    any_causal, full = tile_kinds(L, bq, bk, "cpu")
    assert torch.equal(any_causal, brute > 0)
    rows = torch.clamp(torch.arange(1, nqb + 1) * bq, max=L) - torch.arange(nqb) * bq
    cols = torch.clamp(torch.arange(1, nkb + 1) * bk, max=L) - torch.arange(nkb) * bk
    assert torch.equal(full, brute == rows[:, None] * cols[None, :])


@settings(max_examples=40, deadline=None)
@given(
    L=st.integers(2, 200),
    bq=st.sampled_from([16, 32]),
    bk=st.sampled_from([16, 32]),
    density=st.floats(0.0, 1.0),
    n_cols=st.integers(0, 20),
    seed=st.integers(0, 10**6),
)
def test_attended_pairs_and_column_costs_count_the_dense_mask(L, bq, bk, density, n_cols, seed):
    g = torch.Generator().manual_seed(seed)
    nqb, nkb = math.ceil(L / bq), math.ceil(L / bk)
    blocks = torch.rand(1, 3, nqb, nkb, generator=g) < density
    col_mask = torch.zeros(1, 3, L, dtype=torch.bool)
    for h in range(3):
        col_mask[0, h, torch.randperm(L, generator=g)[: min(n_cols, L)]] = True
    cols = columns_from_mask(col_mask)
    assert cols.shape[-1] == int(col_mask.sum(-1).max())
    assert torch.equal(cols, torch.sort(cols, dim=-1).values)
    pattern = BlockPattern(L, bq, bk, blocks, cols)
    mask = dense_mask(pattern)
    assert torch.equal(attended_pairs(pattern), mask.sum((-1, -2)).double())
    flagged = BlockPattern(L, bq, bk, blocks, column_mask=col_mask)  # the same columns as flags
    assert flagged.has_columns and torch.equal(flagged.column_flags(), col_mask)
    assert torch.equal(flagged.columns, cols)
    assert torch.equal(dense_mask(flagged), mask)
    assert torch.equal(attended_pairs(flagged), attended_pairs(pattern))
    tiles_only = dense_mask(BlockPattern(L, bq, bk, blocks))
    assert not BlockPattern(L, bq, bk, blocks).has_columns
    all_cols = torch.arange(L).expand(1, 3, L)
    brute = (~tiles_only & torch.ones(L, L, dtype=torch.bool).tril()).sum(-2).double()
    assert torch.equal(column_costs(blocks, L, bq, bk, all_cols), brute)


def test_pattern_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="blocks must be a bool tensor"):
        BlockPattern(100, 32, 32, torch.zeros(1, 1, 3, 4, dtype=torch.bool))
    blocks = torch.zeros(1, 2, 4, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="column_mask must be a bool tensor"):
        BlockPattern(100, 32, 32, blocks, column_mask=torch.zeros(1, 2, 99, dtype=torch.bool))
    with pytest.raises(ValueError, match="not both"):
        BlockPattern(
            100,
            32,
            32,
            blocks,
            torch.zeros(1, 2, 1, dtype=torch.long),
            column_mask=torch.zeros(1, 2, 100).bool(),
        )
    with pytest.raises(ValueError, match="must share"):
        BlockPattern(100, 32, 32, blocks, column_mask=torch.zeros(1, 3, 100, dtype=torch.bool))


# --------------------------------------------------------------------------------------------- estimate
@pytest.mark.parametrize(("L", "n"), [(40, 7), (33, 1), (9, 9), (64, 16)])
def test_vertical_and_slash_scores_match_loops(L, n):
    g = torch.Generator().manual_seed(L + n)
    q, k = torch.randn(1, 4, L, 8, generator=g), torch.randn(1, 2, L, 8, generator=g)
    vertical, slash = vertical_slash_scores(q, k, 0.4, n)
    kk = k.repeat_interleave(2, 1)
    probs = last_query_probs(q, k, 0.4, n)
    expected_v = torch.zeros(1, 4, L)
    expected_s = torch.zeros(1, 4, L)
    for i in range(n):
        pos = L - n + i
        logits = torch.einsum("hd,hkd->hk", q[0, :, pos], kk[0, :, : pos + 1]) * 0.4
        p = torch.softmax(logits, -1)
        torch.testing.assert_close(probs[0, :, i, : pos + 1], p)
        assert probs[0, :, i, pos + 1 :].abs().sum() == 0
        expected_v[0, :, : pos + 1] += p
        for key in range(pos + 1):
            expected_s[0, :, pos - key] += p[:, key]
    torch.testing.assert_close(vertical, expected_v)
    torch.testing.assert_close(slash, expected_s)
    torch.testing.assert_close(diagonal_sums(probs), expected_s)


def test_public_exports():
    for name in (
        "apply",
        "SparseMethod",
        "CompressionReport",
        "get_method",
        "list_methods",
        "register_method",
    ):
        assert hasattr(sparse_eval, name)
