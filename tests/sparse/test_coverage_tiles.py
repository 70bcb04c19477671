"""flexprefill's final tile grid from the Triton kernel (`sparse_eval.kernels.coverage_tiles`, CUDA) equals
the plain rule (`flexprefill_rule._tiles_of`): selected columns and diagonals, plus the query-aware tiles
sorting at or before each head's bound, ties broken by flat index, none where the bound index is -1.

The kernel runs on CUDA where there is a GPU, else on CPU tensors through triton's interpreter; its tests are
skipped where triton is not installed (CI) or its interpreter does not run here."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
import torch

from sparse_eval.backends.pattern import tile_kinds
from sparse_eval.methods.flexprefill_rule import _tiles_of
from tests.sparse.triton_kernels import kernel_module

NAME = "sparse_eval.kernels.coverage_tiles"


@pytest.fixture(scope="module")
def kernels() -> Iterator[ModuleType]:
    one = torch.ones(1, 1, dtype=torch.bool)
    yield from kernel_module(NAME, lambda m: m.coverage_tiles(one, one, None, None, None))


@pytest.mark.parametrize(("L", "bs", "heads"), [(1000, 128, 3), (128, 128, 2), (4097, 128, 2), (300, 16, 4)])
@pytest.mark.parametrize("query_aware", [False, True])
def test_kernel_grid_equals_the_plain_rule(kernels, L, bs, heads, query_aware):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(L + bs + heads)
    causal, _ = tile_kinds(L, bs, bs, device)
    nb = causal.shape[-1]
    ranks = torch.stack([torch.randperm(nb, generator=g).expand(heads, nb) for _ in range(2)]).to(device)
    counts = torch.randint(0, nb + 1, (2, heads, 1), generator=g).to(device)
    probs = bound = bound_index = None
    if query_aware:  # coarse probabilities: many ties at the bound
        probs = (torch.randint(0, 5, (heads, nb, nb), generator=g).float() / 4).to(device)
        bound = torch.tensor([[0.5]] * heads, device=device)
        bound_index = torch.randint(-1, nb * nb, (heads, 1), generator=g).to(device)
        bound_index[0] = -1  # one head takes no query-aware tile
    ind = ranks < counts
    got = kernels.coverage_tiles(ind[0], ind[1], probs, bound, bound_index)
    expected = _tiles_of.eager(ranks, counts, causal, probs, bound, bound_index)
    assert got.dtype == torch.bool and torch.equal(got, expected)
