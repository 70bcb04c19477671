"""The Triton tile-row kernel against the torch path: block_sparse's kept tiles (per-row top-k from scores,
forced tiles, ties to the lower index) and any grid's block-mask indices are the same tensors, and the pair
counts are exact; a pattern in index form behaves like its grid everywhere.

The kernel runs on CUDA where there is a GPU, else on CPU tensors through triton's interpreter
(`TRITON_INTERPRET=1`); those tests are skipped where triton is not installed (CI) or its interpreter does
not run. The index-form tests of `BlockPattern` always run.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
import torch

from sparse_eval import get_method
from sparse_eval.backends import tile_index
from sparse_eval.backends.flex import selected_first
from sparse_eval.backends.pattern import (
    BlockPattern,
    TileIndex,
    attended_pairs,
    dense_mask,
    tile_kinds,
    tile_pair_counts,
)
from sparse_eval.compression import pair_budget
from sparse_eval.methods import block_sparse, flexprefill
from sparse_eval.methods.block_sparse import _kernel_tables, forced_tiles, tiles_per_row, top_per_row
from sparse_eval.methods.flexprefill_rule import _row_cumsum
from tests.sparse.triton_kernels import kernel_module

NAME = "sparse_eval.kernels.tile_rows"


@pytest.fixture(scope="module")
def kernel() -> Iterator[ModuleType]:
    codes = torch.ones(1, 2, dtype=torch.int8)
    yield from kernel_module(
        NAME,
        lambda m: m.tile_rows(torch.zeros(1, 1, 1, 2), codes, torch.ones(1, dtype=torch.int32), 64, 32, 32),
    )


@pytest.fixture(scope="module")
def device(kernel) -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_index(blocks: torch.Tensor, L: int, bq: int, bk: int) -> tuple[torch.Tensor, ...]:
    """The torch path of the flex backend: `selected_first` of the partial and the full kept tiles."""
    causal, full = tile_kinds(L, bq, bk, blocks.device)
    sel = blocks & causal
    return (*selected_first.eager(sel & ~full), *selected_first.eager(sel & full))


def assert_same_index(tiles: TileIndex, blocks: torch.Tensor, L: int, bq: int, bk: int) -> None:
    got = (tiles.part_num, tiles.part_idx, tiles.full_num, tiles.full_idx)
    for a, b in zip(got, torch_index(blocks, L, bq, bk), strict=True):
        assert torch.equal(a.cpu(), b.cpu())
    weights = tile_pair_counts(L, bq, bk, blocks.device)
    expected = (blocks & (weights > 0)).to(torch.float64).mul(weights).sum((-1, -2))
    assert torch.equal(tiles.pairs.cpu(), expected.cpu())


CASES = [  # L, q tile, key tile, sink, local, compression
    (600, 32, 16, 1, 1, 4.0),
    (777, 64, 32, 1, 1, 3.0),
    (1024, 128, 64, 0, 0, 5.0),
    (900, 64, 64, 2, 3, 2.0),
    (300, 16, 32, 1, 0, 6.0),
    (400, 32, 32, 1, 1, 1.5),
]


@pytest.mark.parametrize(("L", "bq", "bk", "sink", "local", "compression"), CASES)
def test_kernel_keeps_the_torch_paths_tiles_ties_included(
    kernel, device, L, bq, bk, sink, local, compression
):
    g = torch.Generator().manual_seed(L)
    nqb, nkb = -(-L // bq), -(-L // bk)
    scores = torch.randint(-3, 4, (2, 2, nqb, nkb), generator=g).float()  # many ties
    scores[0, 0] = -scores[0, 0] * 0.0  # -0.0 and 0.0 tie as one value
    scores[1, 1] = torch.randn(nqb, nkb, generator=g)
    budget = pair_budget(L, compression)
    _, keep = tiles_per_row(L, bq, bk, sink, local, budget)
    causal, _ = tile_kinds(L, bq, bk, "cpu")
    forced = forced_tiles(L, bq, bk, sink, local, "cpu")
    masked = scores.masked_fill(~causal, float("-inf")).masked_fill(forced, float("inf"))
    expected = top_per_row(masked, torch.tensor(keep), max(keep)) & causal

    codes, take = _kernel_tables(L, bq, bk, sink, local, budget, torch.device(device))
    tiles = tile_index.index_from_scores(kernel, scores.to(device), codes, take, L, bq, bk)
    assert_same_index(tiles, expected.to(device), L, bq, bk)
    assert torch.equal(tiles.grid().cpu(), expected)


@pytest.mark.parametrize(("L", "bq", "bk"), [(600, 32, 16), (777, 64, 32), (300, 16, 32), (256, 64, 64)])
def test_kernel_indexes_any_grid_like_selected_first(kernel, device, L, bq, bk):
    g = torch.Generator().manual_seed(L + 1)
    nqb, nkb = -(-L // bq), -(-L // bk)
    blocks = torch.rand(2, 3, nqb, nkb, generator=g) < 0.3  # non-causal tiles too: they are dropped
    blocks[1, 1] = True
    blocks[0, 2] = False
    tiles = tile_index.index_from_grid(kernel, blocks.to(device), L, bq, bk)
    assert_same_index(tiles, blocks.to(device), L, bq, bk)


def test_block_sparse_through_the_kernel_equals_the_torch_path(kernel, device, monkeypatch):
    g = torch.Generator().manual_seed(9)
    q = (torch.randn(1, 4, 700, 16, generator=g) + 0.5 * torch.randn(1, 4, 1, 16, generator=g)).to(device)
    k = (torch.randn(1, 2, 700, 16, generator=g) + 0.5 * torch.randn(1, 2, 1, 16, generator=g)).to(device)
    method = get_method("block_sparse", compression=3.0, block_size=16, q_block_size=32)
    plain = method.select(q, k, scaling=0.25, layer_idx=0)
    monkeypatch.setattr(block_sparse, "kernel_for", lambda x, n: kernel)
    fast = method.select(q, k, scaling=0.25, layer_idx=0)
    assert fast.tiles is not None
    assert torch.equal(fast.blocks, plain.blocks & tile_kinds(700, 32, 16, device)[0])
    assert torch.equal(attended_pairs(fast), attended_pairs(plain))


def test_the_tile_kernel_is_off_on_cpu_and_when_switched_off(monkeypatch):
    assert tile_index.kernel_for(torch.zeros(1), 4) is None
    monkeypatch.setenv(tile_index.ENV, "off")
    assert tile_index.kernel_for(torch.zeros(1), 4) is None


def test_a_pattern_in_index_form_is_its_grid():
    L, bq, bk = 300, 32, 16
    g = torch.Generator().manual_seed(4)
    causal, _ = tile_kinds(L, bq, bk, "cpu")
    blocks = (torch.rand(1, 2, *causal.shape, generator=g) < 0.4) & causal
    part_num, part_idx, full_num, full_idx = torch_index(blocks, L, bq, bk)
    pairs = attended_pairs(BlockPattern(L, bq, bk, blocks))
    pattern = BlockPattern(L, bq, bk, tiles=TileIndex(part_num, part_idx, full_num, full_idx, pairs))
    assert pattern.batch_heads == (1, 2) and pattern.num_q_blocks == causal.shape[0]
    assert torch.equal(attended_pairs(pattern), pairs)
    assert torch.equal(pattern.blocks, blocks)
    assert torch.equal(dense_mask(pattern), dense_mask(BlockPattern(L, bq, bk, blocks)))
    with pytest.raises(ValueError, match="needs blocks"):
        BlockPattern(L, bq, bk)


def test_the_flex_backend_takes_a_patterns_own_indices_else_its_grids():
    from sparse_eval.backends import flex

    L, bq, bk = 300, 32, 16
    causal, _ = tile_kinds(L, bq, bk, "cpu")
    blocks = (torch.rand(1, 2, *causal.shape, generator=torch.Generator().manual_seed(5)) < 0.4) | ~causal
    from_grid = flex._tile_indices(BlockPattern(L, bq, bk, blocks))
    expected = torch_index(blocks, L, bq, bk)
    assert all(torch.equal(a, b) for a, b in zip(from_grid, expected, strict=True))
    marked = tuple(t + 0 for t in expected)
    pairs = torch.zeros(1, 2, dtype=torch.float64)
    own = flex._tile_indices(BlockPattern(L, bq, bk, tiles=TileIndex(*marked, pairs)))
    assert all(a is b for a, b in zip(own, marked, strict=True))


def test_piecewise_row_cumsum_is_exact_for_integers_and_close_for_floats():
    g = torch.Generator().manual_seed(2)
    counts = torch.randint(0, 1 << 14, (3, 64), generator=g)
    assert torch.equal(_row_cumsum(counts, 8, pieces=True), torch.cumsum(counts, -1))
    probs = torch.rand(3, 64, generator=g, dtype=torch.float64)
    torch.testing.assert_close(_row_cumsum(probs, 8, pieces=True), torch.cumsum(probs, -1))
    assert torch.equal(_row_cumsum(probs, 8), torch.cumsum(probs, -1))  # CPU: one scan, as before


@pytest.mark.parametrize("tau", [0.0, 10.0])  # all vertical-slash; all query-aware
def test_flexprefill_through_the_kernel_equals_the_torch_path(kernel, device, monkeypatch, tau):
    g = torch.Generator().manual_seed(11)
    q = (torch.randn(1, 4, 600, 16, generator=g) + 0.5 * torch.randn(1, 4, 1, 16, generator=g)).to(device)
    k = (torch.randn(1, 2, 600, 16, generator=g) + 0.5 * torch.randn(1, 2, 1, 16, generator=g)).to(device)
    method = get_method("flexprefill", compression=3.0, tau=tau, block_size=32, min_budget=64, last_q_size=48)
    plain = method.select(q, k, scaling=0.25, layer_idx=0)
    monkeypatch.setattr(flexprefill, "kernel_for", lambda x, n: kernel)
    fast = method.select(q, k, scaling=0.25, layer_idx=0)
    assert fast.tiles is not None
    assert torch.equal(fast.blocks, plain.blocks)
    assert torch.equal(attended_pairs(fast), attended_pairs(plain))
