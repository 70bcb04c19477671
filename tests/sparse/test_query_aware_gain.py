"""flexprefill's query-aware gain from the Triton kernel (`sparse_eval.kernels.query_aware_gain`, CUDA) equals
the plain rule (`flexprefill_rule._query_aware_gain`): per ranked tile, its pairs, or 0 where the head's floor
columns or diagonals already hold it; for ragged shapes, any floor and any sort order.

The kernel runs on CUDA where there is a GPU, else on CPU tensors through triton's interpreter; its tests are
skipped where triton is not installed (CI) or its interpreter does not run here."""

from __future__ import annotations

import math
from collections.abc import Iterator
from types import ModuleType

import pytest
import torch

from sparse_eval.methods.flexprefill_rule import _query_aware_gain, _shape_tables
from tests.sparse.triton_kernels import kernel_module

NAME = "sparse_eval.kernels.query_aware_gain"


@pytest.fixture(scope="module")
def kernels() -> Iterator[ModuleType]:
    one = torch.zeros(1, 1, dtype=torch.long)
    yield from kernel_module(NAME, lambda m: m.query_aware_gain(one, one.expand(2, 1, 1), 1, 16, 16))


@pytest.mark.parametrize(
    ("L", "bs", "heads", "floor"),
    [
        (1000, 128, 3, 2),
        (128, 128, 1, 1),
        (4097, 128, 2, 4),
        (300, 16, 5, 3),
        (3000, 32, 2, 0),
        (600, 64, 2, 99),
    ],
)
def test_kernel_gain_equals_the_plain_rule(kernels, L, bs, heads, floor):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    *_, tri, parts = _shape_tables(L, bs, device)
    T = tri.numel()  # 4097 / 128 and 3000 / 32 tiles: T not a multiple of the kernel's stretch
    nb = -(-L // bs)
    g = torch.Generator().manual_seed(L + bs + heads + floor)
    order = torch.stack([torch.randperm(T, generator=g) for _ in range(heads)]).to(device)
    ranks = torch.stack(
        [torch.stack([torch.randperm(nb, generator=g) for _ in range(heads)]) for _ in range(2)]
    )
    ranks = ranks.to(device)
    got = kernels.query_aware_gain(order, ranks, floor, L, bs)
    expected = _query_aware_gain.eager(order, *parts, ranks, floor)
    assert got.dtype == torch.int64 and torch.equal(got, expected)
    assert (got == 0).any() == (floor > 0)  # floor 0 keeps every tile's pairs (all are positive)


def test_kernel_finds_tiles_far_down_a_long_triangle(kernels):
    """Positions near and at the triangular numbers of a 2^20-tile row count (a 16M-token sequence in 16-token
    tiles, past where a float32 root is exact): the float64 root and its one-step corrections give the row."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    nb, bs = 1 << 20, 16
    L = nb * bs - 5  # the last tile row is 11 rows tall
    rows = torch.tensor([1, 2, 3, 1000, 4095, 4096, 65535, nb - 2, nb - 1])
    starts = rows * (rows + 1) // 2
    positions = torch.cat([starts - 1, starts, starts + 1, starts[-1:] + nb - 1]).clamp(min=0)
    ranks = torch.full((2, 1, nb), nb, dtype=torch.long)  # nothing in the floor
    got = kernels.query_aware_gain(positions[None].to(device), ranks.to(device), 1, L, bs).cpu()[0]
    expected = []
    for p in positions.tolist():
        i = math.isqrt(8 * p + 1) - 1 >> 1
        j = p - i * (i + 1) // 2
        height = min(bs, L - i * bs)
        expected.append(height * bs if i > j else height * (height + 1) // 2)
    assert got.tolist() == expected
