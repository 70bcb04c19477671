"""The faster selection paths choose exactly what the plain rules chose: a top-k threshold equals the prefix of a
stable descending sort (ties to the lower index), the closed-form tile count equals the brute-force search,
scattered ranks equal a double argsort, column costs summed along tile-diagonals equal the costs counted on
the tile grid; a budget that keeps everything runs the dense kernel."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparse_eval import get_method
from sparse_eval.backends.dense import dense_attention
from sparse_eval.backends.flex import COLUMN_BLOCK, padded_column_count
from sparse_eval.backends.pattern import column_costs, tile_pair_counts
from sparse_eval.compression import CompressionReport, pair_budget
from sparse_eval.methods.block_sparse import forced_tiles, tiles_per_row, top_per_row
from sparse_eval.methods.flexprefill_rule import _ranks
from sparse_eval.methods.vertical_slash import (
    _diagonal_tables,
    diagonal_column_costs,
    diagonal_tile_index,
    selected_tiles,
)


def sorted_prefix(scores: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The plain rule: first keep[r] entries of a stable descending sort of each row."""
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
    take = torch.arange(scores.shape[-1])[None, :] < keep[:, None]
    return torch.zeros_like(take.expand_as(scores)).scatter(-1, order, take.expand_as(scores))


@pytest.mark.parametrize("seed", range(6))
def test_top_per_row_equals_the_stable_sort_prefix_with_ties(seed):
    g = torch.Generator().manual_seed(seed)
    rows, n = 9, 23
    scores = torch.randint(-3, 4, (2, 3, rows, n), generator=g).float()  # many equal scores
    scores[..., :2] = float("inf")  # forced entries
    scores[..., -4:] = float("-inf")  # non-causal entries, never reached below
    keep = torch.randint(2, n - 4, (rows,), generator=g)
    got = top_per_row(scores, keep, int(keep.max()))
    assert torch.equal(got, sorted_prefix(scores, keep))


def brute_force_k(L, bq, bk, sink, local, budget):
    """The pre-optimisation search: totals for every k from a (k, rows) table, first argmin."""
    weights = tile_pair_counts(L, bq, bk, "cpu").to(torch.float64)
    forced = forced_tiles(L, bq, bk, sink, local, "cpu")
    causal = weights > 0
    n_causal, n_forced = causal.sum(-1), forced.sum(-1)
    forced_pairs = (weights * forced).sum(-1)
    full_pairs = torch.where(causal & ~forced, weights, torch.zeros_like(weights)).amax(-1)
    ks = torch.arange(1, int(n_causal.max()) + 1)[:, None]
    extra = torch.clamp(torch.minimum(ks, n_causal) - n_forced, min=0)
    totals = (forced_pairs + extra * full_pairs).sum(-1)
    return int(ks[torch.argmin((totals - budget).abs())].item())


@pytest.mark.parametrize(
    ("L", "bq", "bk", "sink", "local"),
    [
        (1000, 16, 16, 1, 1),
        (777, 32, 16, 1, 1),
        (1024, 128, 64, 0, 0),
        (1500, 64, 64, 2, 3),
        (513, 16, 32, 1, 0),
    ],
)
@pytest.mark.parametrize("compression", [1.0, 1.7, 4.0, 10.0, 50.0])
def test_tiles_per_row_equals_the_brute_force_search(L, bq, bk, sink, local, compression):
    budget = pair_budget(L, compression)
    k, keep = tiles_per_row(L, bq, bk, sink, local, budget)
    assert k == brute_force_k(L, bq, bk, sink, local, budget)
    causal = tile_pair_counts(L, bq, bk, "cpu") > 0
    forced = forced_tiles(L, bq, bk, sink, local, "cpu")
    expected = torch.maximum(forced.sum(-1), torch.clamp(causal.sum(-1), max=k))
    assert keep == expected.tolist()


def test_scattered_ranks_equal_a_double_argsort_with_ties():
    g = torch.Generator().manual_seed(3)
    scores = torch.randint(0, 5, (2, 4, 37), generator=g).float()
    scores[..., 0] = float("inf")
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
    assert torch.equal(_ranks(scores), torch.argsort(order, -1))


def qkv(L: int = 200, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(1, h, L, 16, generator=g) for h in (4, 2, 2))


@pytest.mark.parametrize("name", ["vertical_slash", "block_sparse", "flexprefill"])
def test_a_budget_that_keeps_everything_runs_dense_without_selecting(name, monkeypatch):
    method = get_method(name, compression=1)
    assert method.selects_everything()

    def no_selection(*args, **kwargs):
        raise AssertionError("compression 1 must not pay for a selection")

    monkeypatch.setattr(method, "select", no_selection)
    q, k, v = qkv()
    report = CompressionReport()
    out = method.prefill(q, k, v, layer_idx=0, scaling=0.25, stats=report.layer(0, "prefill"))
    assert torch.equal(out, dense_attention(q, k, v, 0.25))
    assert report.achieved_compression("prefill") == 1.0


def test_flexprefill_with_an_explicit_gamma_still_selects():
    method = get_method("flexprefill", gamma=0.5, block_size=16, min_budget=32, last_q_size=48)
    assert not method.selects_everything()
    q, k, v = qkv(400, 1)
    report = CompressionReport()
    method.prefill(q, k, v, layer_idx=0, scaling=0.25, stats=report.layer(0, "prefill"))
    assert report.achieved_compression("prefill") > 1.0


def test_gathered_columns_round_up_to_power_of_two_tiles():
    assert padded_column_count(0) == COLUMN_BLOCK
    assert padded_column_count(1) == COLUMN_BLOCK
    assert padded_column_count(COLUMN_BLOCK + 1) == 2 * COLUMN_BLOCK
    assert padded_column_count(5 * COLUMN_BLOCK) == 8 * COLUMN_BLOCK
    assert padded_column_count(8 * COLUMN_BLOCK) == 8 * COLUMN_BLOCK


@settings(max_examples=40, deadline=None)
@given(
    L=st.integers(1, 700),
    tiles=st.sampled_from([(128, 64), (64, 64), (64, 16), (128, 32)]),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_tiles_and_column_costs_along_the_tile_diagonals_equal_the_plain_rules(L, tiles, density, seed):
    """vertical_slash reads its tiles as strided windows of the selected tile-diagonals and prices its columns
    from prefix sums along them; the plain rules look up each tile's diagonal and count each column's
    uncovered rows on the (nqb x nkb) grid of those tiles."""
    bq, bk = tiles
    outside, _, causal_tiles = _diagonal_tables(L, bq, bk, "cpu")
    g = torch.Generator().manual_seed(seed)
    diag_sel = torch.rand(2, 3, outside.shape[0], generator=g) < density
    nqb, nkb = causal_tiles.shape
    blocks = selected_tiles(diag_sel, causal_tiles, bq // bk)
    u = diagonal_tile_index(nqb, nkb, bq // bk, "cpu")  # the plain rule: each tile's own tile-diagonal
    on_diagonal = diag_sel[..., u.clamp(0, diag_sel.shape[-1] - 1)] & (u >= 0) & (u < diag_sel.shape[-1])
    assert torch.equal(blocks, on_diagonal & causal_tiles)
    every_column = torch.arange(L).expand(2, 3, L)
    expected = column_costs(blocks, L, bq, bk, every_column)
    assert torch.equal(diagonal_column_costs(diag_sel, L, bq, bk), expected)
