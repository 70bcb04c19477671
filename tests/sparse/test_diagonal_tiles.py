"""vertical_slash's tiles and column costs from the Triton kernels (`sparse_eval.kernels.diagonal_tiles`,
CUDA) equal the plain functions (`selected_tiles`, `diagonal_column_costs`) for ragged lengths, every tile
ratio and any selection of tile-diagonals.

The kernels run on CUDA where there is a GPU, else on CPU tensors through triton's interpreter; their tests
are skipped where triton is not installed (CI) or its interpreter does not run here."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
import torch

from sparse_eval.methods.vertical_slash import (
    _diagonal_tables,
    diagonal_column_costs,
    diagonal_prefix,
    selected_tiles,
)
from tests.sparse.triton_kernels import kernel_module

NAME = "sparse_eval.kernels.diagonal_tiles"


@pytest.fixture(scope="module")
def kernels() -> Iterator[ModuleType]:
    one = torch.ones(1, 1, dtype=torch.bool)
    yield from kernel_module(NAME, lambda m: m.tiles_and_column_costs(one, one.long(), 1, 16, 16))


@pytest.mark.parametrize(
    ("L", "bq", "bk", "density"),
    [
        (1, 128, 64, 1.0),
        (700, 128, 64, 0.3),
        (1000, 64, 16, 0.5),
        (1025, 128, 32, 0.1),
        (4097, 128, 64, 0.05),
        (2048, 64, 64, 0.7),
    ],
)
def test_kernels_equal_the_plain_functions(kernels, L, bq, bk, density):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    outside, _, causal_tiles = _diagonal_tables(L, bq, bk, device)
    g = torch.Generator().manual_seed(L + bq + bk)
    diag_sel = (torch.rand(2, 3, outside.shape[0], generator=g) < density).to(device)
    diag_sel[0, 0] = True  # one head with every tile-diagonal, one with none
    diag_sel[1, 2] = False
    along = diagonal_prefix(diag_sel, bq // bk)
    blocks, costs = kernels.tiles_and_column_costs(diag_sel, along, L, bq, bk)
    assert blocks.dtype == torch.bool and costs.dtype == torch.float64
    assert torch.equal(blocks, selected_tiles(diag_sel, causal_tiles, bq // bk))
    assert torch.equal(costs, diagonal_column_costs(diag_sel, L, bq, bk))
