"""The tile pass of a pattern with exact columns gets the same block-mask indices from the Triton row kernel
(`sparse_eval.kernels.column_tiles`, CUDA) as from `flex.selected_first` on the tile grid (everywhere else),
and `columns_from_mask` lists columns by the plain rule.

The kernel runs on CUDA where there is a GPU, else on CPU tensors through triton's interpreter; its tests are
skipped where triton is not installed (CI) or its interpreter does not run here."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
import torch

from sparse_eval.backends import flex
from sparse_eval.backends.pattern import columns_from_mask, tile_kinds
from tests.sparse.triton_kernels import kernel_module

NAME = "sparse_eval.kernels.column_tiles"


@pytest.fixture(scope="module")
def kernels() -> Iterator[ModuleType]:
    one = torch.ones(1, 1, 1, 1, dtype=torch.bool)
    yield from kernel_module(
        NAME, lambda m: m.split_tiles(one, torch.ones(1, 1, dtype=torch.int8), one[0, :, 0])
    )


# 128 x 64 (the default), 32 x 16, one tile, and a length one past a tile boundary
@pytest.mark.parametrize(
    ("L", "bq", "bk", "heads"), [(1000, 128, 64, 3), (300, 32, 16, 2), (64, 64, 64, 1), (4097, 128, 64, 2)]
)
def test_tile_pass_indices_equal_selected_first(kernels, L, bq, bk, heads):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(L)
    nqb, nkb = -(-L // bq), -(-L // bk)
    blocks = (torch.rand(1, heads, nqb, nkb, generator=g) < 0.4).to(device)
    in_tile = (torch.rand(1, heads, nkb, generator=g) < 0.3).to(device)
    blocks[..., 0, :] = True  # a full first row: every tile kind appears in the lists
    in_tile[..., -1] = False
    got = kernels.split_tiles(blocks, flex._tile_kind_codes(L, bq, bk, torch.device(device)), in_tile)
    causal, full = tile_kinds(L, bq, bk, device)
    sel, clean = blocks & causal, full & ~in_tile[..., None, :]
    expected = (*flex.selected_first.eager(sel & ~clean), *flex.selected_first.eager(sel & clean))
    for a, b in zip(got, expected, strict=True):
        assert a.dtype == b.dtype == torch.int32
        assert torch.equal(a, b)


def test_the_tile_pass_takes_the_grid_path_off_cuda():
    blocks = torch.tensor([[[[True, False], [True, True]]]])
    in_tile = torch.tensor([[[True, False]]])
    part_num, part_idx, full_num, full_idx = flex._tile_pass_indices(blocks, in_tile, 128, 64, 64)
    # tile (1, 0) is full but holds a column: masked ("part"); (0, 0) and (1, 1) are on the diagonal
    assert part_num.tolist() == [[[1, 2]]] and part_idx.tolist() == [[[[0, 1], [0, 1]]]]
    assert full_num.tolist() == [[[0, 0]]] and full_idx.tolist() == [[[[0, 1], [0, 1]]]]


@pytest.mark.parametrize("share", [0.0, 0.02, 0.5, 1.0])
def test_columns_from_mask_lists_each_heads_columns_ascending_padded_with_L(share):
    g = torch.Generator().manual_seed(int(share * 100))
    mask = torch.rand(2, 3, 257, generator=g) < share
    mask[0, 0] = False  # a head without columns
    idx = torch.arange(257).expand_as(mask)
    width = int(mask.sum(-1).max())
    expected = torch.sort(torch.where(mask, idx, 257), dim=-1).values[..., :width]  # the plain rule
    assert torch.equal(columns_from_mask(mask), expected)
