"""The Triton Quest decode kernels against the torch path: the same pages (exactly), the same output (to float
tolerance), dense attention when the budget covers every page, and the written tie rule on both paths.

The kernels run on CUDA where there is a GPU, else on CPU tensors through triton's interpreter
(`TRITON_INTERPRET=1`); they are skipped where triton is not installed (CI) or its interpreter does not run.
The tie-rule tests of the torch path always run.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F

from sparse_eval.methods.quest import (
    budget_pages,
    page_scores,
    page_summaries,
    quest_decode_attention,
    select_tokens,
)
from tests.sparse.triton_kernels import kernel_module

NAME = "sparse_eval.kernels.quest_decode"


@pytest.fixture(scope="module")
def kernels() -> Iterator[ModuleType]:
    """sparse_eval.kernels.quest_decode: compiled on a CUDA machine, else run by triton's interpreter."""
    yield from kernel_module(
        NAME, lambda m: m.select_pages(torch.zeros(1, 1, 1, 16), torch.zeros(1, 1, 3, 32), 64, 1, 16, True)
    )


@pytest.fixture(scope="module")
def device(kernels) -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _inputs(
    seed: int, batch: int, kv_heads: int, group: int, length: int, dim: int, dtype=torch.float32, device="cpu"
):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, kv_heads * group, 1, dim, generator=gen)
    k, v = torch.randn(2, batch, kv_heads, length, dim, generator=gen)
    return q.to(device, dtype), k.to(device, dtype), v.to(device, dtype)


def _page_sets(tokens: torch.Tensor, page: int) -> list[set[int]]:
    return [set((row // page).tolist()) for row in tokens.flatten(0, 1)]


CASES = [  # batch, kv heads, group, length, dim, page, compression, share
    (1, 4, 7, 1000, 64, 16, 4.0, True),
    (4, 2, 4, 333, 32, 16, 3.0, True),
    (1, 1, 7, 517, 16, 8, 5.0, False),
    (4, 3, 1, 250, 16, 16, 2.5, True),
    (1, 2, 4, 5000, 32, 16, 10.0, True),  # > one selection chunk of keys
    (2, 1, 4, 203, 16, 4, 6.0, False),
]


@pytest.mark.parametrize(("chunk", "fuse"), [(None, True), (16, True), (16, False)])
@pytest.mark.parametrize(
    ("batch", "kv_heads", "group", "length", "dim", "page", "compression", "share"), CASES
)
def test_kernel_selects_the_same_pages_and_output(
    kernels, device, monkeypatch, batch, kv_heads, group, length, dim, page, compression, share, chunk, fuse
):
    """chunk 16: rows of more keys than that are read chunk by chunk instead of held at once; fuse: the
    attention programs select their own pages (else one selecting program per row, which `select_pages`
    always runs)."""
    if chunk is not None:
        monkeypatch.setattr(kernels, "SELECT_CHUNK", chunk)
    monkeypatch.setattr(kernels, "FUSE_SELECT", fuse)
    q, k, v = _inputs(length, batch, kv_heads, group, length, dim, device=device)
    summaries = page_summaries(k, page)
    extra = budget_pages(length, compression, page)
    pages = kernels.select_pages(q, summaries, length, extra, page, share)
    tokens = select_tokens(q, summaries, length, compression, page, share)
    assert [set(row.tolist()) for row in pages] == _page_sets(tokens, page)
    assert all(row.tolist() == sorted(row.tolist()) for row in pages)  # ascending, current page last

    kw = {"scaling": dim**-0.5, "compression": compression, "page_size": page, "share_pages": share}
    fused, n_fused = quest_decode_attention(q, k, v, summaries=summaries, fused=True, **kw)
    torch_out, n_torch = quest_decode_attention(q, k, v, summaries=summaries, fused=False, **kw)
    masked, _ = quest_decode_attention(q, k, v, summaries=summaries, gather=False, **kw)
    assert n_fused == n_torch == tokens.shape[-1]
    torch.testing.assert_close(fused, torch_out, rtol=2e-5, atol=2e-6)
    torch.testing.assert_close(fused, masked, rtol=2e-5, atol=2e-6)


def _fused_page_list(kernels, q, summaries, length, extra, page, share) -> torch.Tensor:
    """The page list the attention programs write when they select their own pages (FUSE_SELECT)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernels, "FUSE_SELECT", True)
        return kernels.page_list(q, summaries, length, extra, page, share)


@pytest.mark.parametrize(
    ("chunk", "score_pages", "programs", "min_pages", "split_programs"),
    [(64, 16, 1, 1, 2), (128, 64, 8, 16, 1), (4096, 64, 2, 4, 4), (32, 32, 4, 8, 8)],
)
def test_kernel_launch_settings_agree(
    kernels, device, monkeypatch, chunk, score_pages, programs, min_pages, split_programs
):
    """Other launch settings (keys read in several chunks a pass, other page blocks and program counts) select
    the same pages, and the page list the attention programs write themselves (in 1-4 slices a row) equals
    the selecting kernel's."""
    for name, value in (
        ("SELECT_CHUNK", chunk),
        ("SCORE_PAGES", score_pages),
        ("SCORE_PROGRAMS_PER_SM", programs),
        ("MIN_PAGES_PER_SPLIT", min_pages),
        ("PROGRAMS_PER_SM", split_programs),
    ):
        monkeypatch.setattr(kernels, name, value)
    q, k, v = _inputs(11, 2, 2, 4, 3000, 32, device=device)
    summaries = page_summaries(k, 16)
    extra = budget_pages(3000, 6.0, 16)
    pages = kernels.select_pages(q, summaries, 3000, extra, 16, True)
    tokens = select_tokens(q, summaries, 3000, 6.0, 16)
    assert [set(row.tolist()) for row in pages] == _page_sets(tokens, 16)
    assert torch.equal(_fused_page_list(kernels, q, summaries, 3000, extra, 16, True), pages)
    kw = {"scaling": 0.2, "compression": 6.0, "page_size": 16, "summaries": summaries}
    fused, _ = quest_decode_attention(q, k, v, fused=True, **kw)
    masked, _ = quest_decode_attention(q, k, v, gather=False, **kw)
    torch.testing.assert_close(fused, masked, rtol=2e-5, atol=2e-6)


def test_kernel_bfloat16_matches_float32_reference(kernels, device):
    q, k, v = _inputs(3, 2, 2, 7, 700, 64, torch.bfloat16, device)
    kw = {"scaling": 0.125, "compression": 5.0, "page_size": 16}
    fused, _ = quest_decode_attention(q, k, v, fused=True, **kw)
    ref, _ = quest_decode_attention(q.float(), k.float(), v.float(), gather=False, **kw)
    assert fused.dtype == torch.bfloat16
    torch.testing.assert_close(fused.float(), ref, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize(("length", "page"), [(77, 16), (96, 16), (9, 16), (300, 32)])
def test_kernel_full_budget_is_dense(kernels, device, length, page):
    q, k, v = _inputs(length, 2, 2, 4, length, 32, device=device)
    out, attended = quest_decode_attention(q, k, v, scaling=0.2, compression=1.0, page_size=page, fused=True)
    dense = F.scaled_dot_product_attention(q, k, v, scale=0.2, enable_gqa=True)
    assert attended == length
    torch.testing.assert_close(out, dense, rtol=2e-5, atol=2e-6)


def test_kernel_tiny_budget_keeps_only_the_current_page(kernels, device):
    q, k, v = _inputs(5, 1, 2, 3, 330, 16, device=device)  # 21 pages, the last holds 10 tokens
    out, attended = quest_decode_attention(
        q, k, v, scaling=0.25, compression=1000.0, page_size=16, fused=True
    )
    local = F.scaled_dot_product_attention(q, k[:, :, 320:], v[:, :, 320:], scale=0.25, enable_gqa=True)
    assert attended == 10
    torch.testing.assert_close(out, local, rtol=2e-5, atol=2e-6)


def _tied_keys(length: int, page: int) -> tuple[torch.Tensor, ...]:
    """Every page identical (so every score ties) except page 2, which scores highest."""
    gen = torch.Generator().manual_seed(9)
    q = torch.randn(1, 4, 1, 16, generator=gen)
    block = torch.randn(1, 2, 1, page, 16, generator=gen)
    k = block.expand(-1, -1, math.ceil(length / page), -1, -1).reshape(1, 2, -1, 16)[:, :, :length].clone()
    k[:, :, 2 * page : 3 * page] = q.reshape(1, 2, 2, 16).sum(2)[:, :, None] * 5  # aligned with the query
    return q, k


@pytest.mark.parametrize("share", [True, False])
def test_torch_path_ties_go_to_the_later_pages(share):
    q, k = _tied_keys(200, 16)  # 13 pages: 12 ranked, the current page holds 8 tokens
    tokens = select_tokens(q, page_summaries(k, 16), 200, 200 / (4 * 16 + 8), 16, share)
    assert _page_sets(tokens, 16) == [{2, 9, 10, 11, 12}] * tokens.shape[1]


@pytest.mark.parametrize("chunk", [8, 4096])
@pytest.mark.parametrize("share", [True, False])
def test_kernel_ties_go_to_the_later_pages(kernels, device, monkeypatch, share, chunk):
    """11 tied keys, 4 pages wanted: the first one and the latest three of the ties; the row read in chunks
    of 8 keys or held at once, by the selecting kernel and by the attention programs."""
    monkeypatch.setattr(kernels, "SELECT_CHUNK", chunk)
    q, k = (t.to(device) for t in _tied_keys(200, 16))
    summaries = page_summaries(k, 16)
    pages = kernels.select_pages(q, summaries, 200, 4, 16, share)
    assert [row.tolist() for row in pages] == [[2, 9, 10, 11, 12]] * pages.shape[0]
    assert torch.equal(_fused_page_list(kernels, q, summaries, 200, 4, 16, share), pages)


@pytest.mark.parametrize("extra", [1, 2, 5, 11])
def test_kernel_all_keys_equal(kernels, device, monkeypatch, extra):
    """Every page ties (all key bits shared, no bisection step runs): the latest `extra` pages."""
    monkeypatch.setattr(kernels, "SELECT_CHUNK", 8)
    gen = torch.Generator().manual_seed(4)
    q = torch.randn(1, 2, 1, 16, generator=gen).to(device)
    k = torch.randn(1, 1, 1, 16, 16, generator=gen).expand(1, 1, 13, 16, 16).reshape(1, 1, 208, 16).to(device)
    summaries = page_summaries(k, 16)
    pages = kernels.select_pages(q, summaries, 200, extra, 16, True)
    assert pages.tolist() == [list(range(12 - extra, 13))]
    assert torch.equal(_fused_page_list(kernels, q, summaries, 200, extra, 16, True), pages)


def test_kernel_negative_zero_and_tied_scores(kernels, device, monkeypatch):
    """Scores of both signs and zero ties: pages of constant keys score q.w, pages of zero and of negative-zero
    keys score 0 under a positive query (a sum of -0.0 products may come out -0.0, which ranks as +0.0); the
    kernel ranks them as the torch path."""
    monkeypatch.setattr(kernels, "SELECT_CHUNK", 16)
    gen = torch.Generator().manual_seed(8)
    q = torch.randn(1, 4, 1, 16, generator=gen).abs()
    k = torch.randn(1, 2, 50, 1, 16, generator=gen).expand(-1, -1, -1, 16, -1).clone()
    k[:, :, 10:20] = 0.0
    k[:, :, 20:30] = -0.0
    k = k.reshape(1, 2, 800, 16)
    summaries = page_summaries(k, 16)
    scores = page_scores(q, summaries)
    assert (scores < 0).any() and (scores > 0).any() and (scores == 0).sum() == 40
    for extra in (3, 10, 20, 30, 40):
        pages = kernels.select_pages(q.to(device), summaries.to(device), 800, extra, 16, True)
        tokens = select_tokens(q, summaries, 800, 800 / (extra * 16 + 16), 16)
        assert [set(row.tolist()) for row in pages.cpu()] == _page_sets(tokens, 16)
        fused = _fused_page_list(kernels, q.to(device), summaries.to(device), 800, extra, 16, True)
        assert torch.equal(fused, pages)


def test_fused_without_kernels_says_how_to_fall_back(monkeypatch):
    monkeypatch.setattr("sparse_eval.methods.quest.quest_kernels", lambda: None)
    q, k, v = _inputs(0, 1, 1, 2, 40, 16)
    with pytest.raises(ValueError, match="fused=None"):
        quest_decode_attention(q, k, v, scaling=0.25, compression=2.0, page_size=16, fused=True)
    out, _ = quest_decode_attention(q, k, v, scaling=0.25, compression=2.0, page_size=16)  # torch path
    assert out.shape == q.shape
