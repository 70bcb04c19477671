"""flexprefill's query-aware prefix sums from the Triton kernels (`sparse_eval.kernels.query_aware_prefix`,
CUDA) equal the plain rule's (`flexprefill_rule`: float64 cumsum of the ranked probabilities, cumsum of
`_query_aware_gain`): the pairs exactly, the probabilities to float64 rounding; for ragged shapes, any floor
and any sort order, and for tile rows far down a long triangle.

The kernels run on CUDA where there is a GPU, else on CPU tensors through triton's interpreter; their tests are
skipped where triton is not installed (CI) or its interpreter does not run here."""

from __future__ import annotations

import math
from collections.abc import Iterator
from types import ModuleType

import pytest
import torch

from sparse_eval.methods.flexprefill_rule import _query_aware_gain, _shape_tables
from tests.sparse.triton_kernels import flexprefill_tiles_with_one_kernel, kernel_module

NAME = "sparse_eval.kernels.query_aware_prefix"


@pytest.fixture(scope="module")
def kernels() -> Iterator[ModuleType]:
    one = torch.zeros(1, 1, dtype=torch.long)
    yield from kernel_module(
        NAME, lambda m: m.query_aware_prefix(one.float(), one, one.expand(2, 1, 1), 1, 16, 16)
    )


@pytest.mark.parametrize(
    ("L", "bs", "heads", "floor"),
    [
        (1000, 128, 3, 2),
        (128, 128, 1, 1),
        (4097, 128, 2, 4),  # 528 tiles: the last block of a head is partial
        (300, 16, 5, 3),
        (3000, 32, 2, 0),  # 4465 tiles: three blocks of the kernel, the last partial
        (600, 64, 2, 99),
    ],
)
def test_kernel_prefix_sums_equal_the_plain_rule(kernels, L, bs, heads, floor):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    *_, tri, parts = _shape_tables(L, bs, device)
    T = tri.numel()
    nb = -(-L // bs)
    g = torch.Generator().manual_seed(L + bs + heads + floor)
    order = torch.stack([torch.randperm(T, generator=g) for _ in range(heads)]).to(device)
    probs = torch.rand(heads, T, generator=g).sort(-1, descending=True).values.to(device) / nb
    ranks = torch.stack(
        [torch.stack([torch.randperm(nb, generator=g) for _ in range(heads)]) for _ in range(2)]
    ).to(device)
    prob_cum, gain_cum = kernels.query_aware_prefix(probs, order, ranks, floor, L, bs)
    gain = _query_aware_gain.eager(order, *parts, ranks, floor)
    assert gain_cum.dtype == torch.int64 and torch.equal(gain_cum, torch.cumsum(gain, -1))
    assert prob_cum.dtype == torch.float64
    torch.testing.assert_close(prob_cum, torch.cumsum(probs.double(), -1), rtol=1e-14, atol=1e-14)
    assert (gain == 0).any() == (floor > 0)  # floor 0 keeps every tile's pairs (all are positive)


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
    probs = torch.zeros(1, positions.numel())
    _, gain_cum = kernels.query_aware_prefix(
        probs.to(device), positions[None].to(device), ranks.to(device), 1, L, bs
    )
    expected = []
    for p in positions.tolist():
        i = math.isqrt(8 * p + 1) - 1 >> 1
        j = p - i * (i + 1) // 2
        height = min(bs, L - i * bs)
        expected.append(height * bs if i > j else height * (height + 1) // 2)
    assert torch.diff(gain_cum.cpu()[0], prepend=torch.zeros(1, dtype=torch.long)).tolist() == expected


def test_kernel_refuses_a_ranking_that_does_not_fit_the_tiles(kernels):
    order = torch.zeros(1, 11, dtype=torch.long)  # 4 tiles of 16 tokens hold 10 causal tiles, not 11
    with pytest.raises(ValueError, match="do not fit 64 tokens in 16-tiles"):
        kernels.query_aware_prefix(order.float(), order, torch.zeros(2, 1, 4, dtype=torch.long), 1, 64, 16)


@pytest.mark.parametrize("tau", [0.3, 10.0])  # mixed heads; all query-aware
def test_flexprefill_through_the_prefix_kernels_selects_the_same_tiles(kernels, monkeypatch, tau):
    plain, fast = flexprefill_tiles_with_one_kernel(kernels, "query_aware_prefix", monkeypatch, tau, 700, 5)
    assert torch.equal(fast, plain) and fast.sum() < plain.numel()
