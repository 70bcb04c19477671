"""flexprefill's gamma search through the Triton kernel (`sparse_eval.kernels.gamma_pairs`, CUDA) counts each
head's pairs at each candidate gamma exactly as the plain rule (`flexprefill_rule.head_pairs`, a float64
product with the overlap table): for ragged shapes, query-aware heads or none, floors above the tile count
and candidates that land exactly on a cumulative sum; and a whole selection picks the same tiles.

The kernel runs on CUDA where there is a GPU, else on CPU tensors through triton's interpreter; its tests are
skipped where triton is not installed (CI) or its interpreter does not run here."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
import torch

from sparse_eval.methods.flexprefill_rule import (
    VerticalSlashCounts,
    _shape_tables,
    head_pairs,
    pair_weights,
)
from tests.sparse.triton_kernels import flexprefill_tiles_with_one_kernel, kernel_module

NAME = "sparse_eval.kernels.gamma_pairs"


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(scope="module")
def kernels() -> Iterator[ModuleType]:
    def smoke(module: ModuleType) -> None:
        weights = tuple(torch.zeros(1, dtype=torch.long) for _ in range(4))
        module.head_pairs(
            torch.zeros(1, dtype=torch.float64), torch.zeros(2, 1, 16), torch.zeros(2, 1, 1, dtype=torch.long),
            torch.zeros(1, dtype=torch.bool), weights, None, None, 16, 1, 1,
        )  # fmt: skip

    yield from kernel_module(NAME, smoke)


@pytest.mark.parametrize("L", [1000, 128, 4097, 300, 64 * 37 + 5])
@pytest.mark.parametrize("bs", [16, 64, 128])
def test_pair_weights_describe_the_overlap_table(L, bs):
    """Where column j meets diagonal t (j + t < nb) the overlap is one of two tile kinds: the kernel's claim."""
    col_w, diag_w, overlap, *_ = _shape_tables(L, bs, "cpu")
    w_col, w_diag, inner, last = pair_weights(L, bs, "cpu")
    nb = overlap.shape[0]
    assert torch.equal(w_col.double(), col_w) and torch.equal(w_diag.double(), diag_w)
    for j in range(nb):
        for t in range(nb):
            expected = 0 if j + t >= nb else (last[t] if j + t == nb - 1 else inner[t])
            assert overlap[j, t] == expected, (j, t)


def _inputs(L: int, bs: int, heads: int, min_blocks: int, qa_heads: int, seed: int, device: str):
    nb = -(-L // bs)
    g = torch.Generator().manual_seed(seed)
    probs = torch.rand(2, heads, L, generator=g) ** 4
    probs /= probs.sum(-1, keepdim=True)
    cums = torch.cumsum(probs.sort(-1, descending=True).values, -1)
    ranks = torch.stack(
        [torch.stack([torch.randperm(nb, generator=g) for _ in range(heads)]) for _ in range(2)]
    )
    query_aware = torch.zeros(heads, dtype=torch.bool)
    query_aware[torch.randperm(heads, generator=g)[:qa_heads]] = True
    vs = VerticalSlashCounts(cums.to(device), ranks.to(device), query_aware.to(device), bs, min_blocks)
    T = nb * (nb + 1) // 2
    tile_probs = torch.rand(heads, T, generator=g, dtype=torch.float64).sort(-1, descending=True).values
    qa_cum = torch.cumsum(tile_probs * (nb / tile_probs.sum(-1, keepdim=True)), -1)
    qa_gain = torch.cumsum(torch.randint(0, bs * bs + 1, (heads, T), generator=g), -1)
    grid = torch.cat(
        [
            torch.linspace(0, 1, 61, dtype=torch.float64),
            cums[0, 0, L // 3 : L // 3 + 1].double(),  # exactly on a cumulative sum: right=True counts it
            qa_cum[0, T // 2 : T // 2 + 1] / nb,
            torch.tensor([1.5], dtype=torch.float64),
        ]
    )
    return grid.to(device), vs, qa_cum.to(device), qa_gain.to(device)


@pytest.mark.parametrize(
    ("L", "bs", "heads", "min_blocks", "qa_heads"),
    [
        (1000, 128, 3, 2, 1),
        (128, 128, 1, 1, 0),
        (4097, 128, 2, 4, 2),  # a one-token last query row
        (300, 16, 5, 3, 2),
        (3000, 32, 2, 0, 1),  # floor 0
        (600, 64, 2, 99, 1),  # the floor above the tile count
        (2500, 16, 2, 4, 1),  # 157 tiles: the kernel's ranks in two blocks of 128
    ],
)
@pytest.mark.parametrize("with_ranking", [True, False])
def test_kernel_counts_the_pairs_of_the_plain_rule(
    kernels, monkeypatch, L, bs, heads, min_blocks, qa_heads, with_ranking
):
    device = _device()
    if L == 2500:
        monkeypatch.setattr(kernels, "BLOCK", 128)
    grid, vs, qa_cum, qa_gain = _inputs(L, bs, heads, min_blocks, qa_heads, L + bs + heads, device)
    if not with_ranking:
        qa_cum = qa_gain = None
    col_w, diag_w, overlap, *_ = _shape_tables(L, bs, device)
    plain = head_pairs(grid, vs, col_w, diag_w, overlap, qa_cum, qa_gain)
    fast = kernels.head_pairs(
        grid,
        vs.cums,
        vs.ranks,
        vs.query_aware,
        pair_weights(L, bs, device),
        qa_cum,
        qa_gain,
        bs,
        min_blocks,
        vs.floor,
    )
    assert fast.dtype == torch.int64 and fast.shape == plain.shape
    assert torch.equal(fast.double(), plain)
    if min_blocks < -(-L // bs) and (with_ranking or qa_heads < heads):  # different patterns
        assert len(set(plain.flatten().tolist())) > 2


def test_kernel_refuses_mismatched_inputs(kernels):
    weights = tuple(torch.zeros(3, dtype=torch.long) for _ in range(4))
    with pytest.raises(ValueError, match=r"four \(4,\) weight tables"):
        kernels.head_pairs(
            torch.zeros(1, dtype=torch.float64), torch.zeros(2, 1, 64), torch.zeros(2, 1, 4, dtype=torch.long),
            torch.zeros(1, dtype=torch.bool), weights, None, None, 16, 1, 1,
        )  # fmt: skip


@pytest.mark.parametrize("tau", [0.0, 0.3, 10.0])  # no query-aware head; mixed; all query-aware
def test_flexprefill_through_the_gamma_kernel_selects_the_same_tiles(kernels, monkeypatch, tau):
    plain, fast = flexprefill_tiles_with_one_kernel(kernels, "gamma_pairs", monkeypatch, tau, 900, 11)
    assert torch.equal(fast, plain) and fast.sum() < plain.numel()
