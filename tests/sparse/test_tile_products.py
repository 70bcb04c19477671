"""The 3xTF32 tile-products kernel (`sparse_eval.kernels.tile_products`) gives the float32 product that
block_sparse and flexprefill rank tiles by, for ragged shapes and every head size it accepts; `tile_products`
falls back to torch.matmul where the kernel does not apply.

The kernel runs on CUDA where there is a GPU, else on CPU tensors through triton's interpreter; its tests are
skipped where triton is not installed (CI) or its interpreter does not run here."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
import torch

from sparse_eval.methods.block_sparse import tile_products
from tests.sparse.triton_kernels import kernel_module

NAME = "sparse_eval.kernels.tile_products"


@pytest.fixture(scope="module")
def kernels() -> Iterator[ModuleType]:
    one = torch.ones(1, 1, 16)
    yield from kernel_module(NAME, lambda m: m.products(one, one))


@pytest.mark.parametrize(
    ("lead", "M", "N", "D"),
    [((1, 4), 7 * 9, 17, 128), ((2, 1), 130, 129, 64), ((3,), 1, 1, 16), ((1, 2), 256, 300, 256)],
)
def test_products_equal_the_float32_matmul(kernels, lead, M, N, D):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(M * N + D)
    a = torch.randn(*lead, M, D, generator=g).to(device)
    b = torch.randn(*lead, N, D, generator=g).to(device)
    assert kernels.supports(a, b)
    got = kernels.products(a, b)
    expected = torch.matmul(a.double(), b.double().transpose(-1, -2))
    assert got.shape == (*lead, M, N) and got.dtype == torch.float32
    # float32-level error (3xTF32): far below plain TF32's ~1e-3 relative
    assert float((got.double() - expected).abs().max()) <= 1e-5 * float(expected.abs().max())


@pytest.mark.parametrize(("groups", "period", "D"), [(3, 100, 64), (2, 256, 128), (1, 1, 16), (5, 129, 32)])
def test_causal_products_are_the_scaled_products_with_the_future_masked(kernels, groups, period, D):
    """flexprefill's logits: row r is query tile r % period (query groups stacked); the kernel's causal form
    equals its plain product times the scale with later key tiles at -inf, bit for bit (row blocks that wrap
    from one group to the next included)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(groups * period + D)
    a = torch.randn(2, groups * period, D, generator=g).to(device)
    b = torch.randn(2, period, D, generator=g).to(device)
    scale = D**-0.5
    got = kernels.products(a, b, scale, causal_period=period)
    tile = torch.arange(groups * period, device=device) % period
    future = torch.arange(period, device=device)[None, :] > tile[:, None]
    expected = (kernels.products(a, b) * scale).masked_fill(future, float("-inf"))
    assert torch.equal(got, expected)
    fallback = tile_products(a.cpu(), b.cpu(), scale, causal_period=period)  # torch's path: same mask
    assert torch.equal(torch.isinf(fallback), future.cpu().expand_as(fallback))
    torch.testing.assert_close(fallback, got.cpu(), rtol=1e-5, atol=1e-5)


def test_products_reject_what_they_cannot_run(kernels):
    a = torch.randn(1, 4, 32)
    assert not kernels.supports(a.double(), a.double())  # float32 only
    assert not kernels.supports(a[..., :24], a[..., :24])  # head sizes 16 .. 256, powers of two
    assert not kernels.supports(a, torch.randn(2, 4, 32))  # batch dims must match


def test_tile_products_off_cuda_is_the_matmul():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 3, 5, 24, generator=g), torch.randn(2, 3, 7, 24, generator=g)
    assert torch.equal(tile_products(a, b), torch.matmul(a, b.transpose(-1, -2)))


def test_a_failing_kernel_warns_once_then_torch_runs(monkeypatch):
    """A kernel that cannot compile on the user's GPU must not stop the method: one warning, then torch."""
    from types import SimpleNamespace

    from sparse_eval.methods import block_sparse

    calls = []

    def products(a, b, *_):
        calls.append(a.shape)
        raise RuntimeError("no compiler for this GPU")

    fake = SimpleNamespace(supports=lambda a, b: True, products=products)
    monkeypatch.setattr(
        block_sparse, "tile_kernels", lambda name, x: fake if name == "tile_products" else None
    )
    monkeypatch.setattr(block_sparse, "_products_failed", False)
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(1, 2, 6, 16, generator=g), torch.randn(1, 2, 5, 16, generator=g)
    with pytest.warns(RuntimeWarning, match="no compiler for this GPU"):
        first = tile_products(a, b)
    second = tile_products(a, b)  # no second attempt, no second warning
    expected = torch.matmul(a, b.transpose(-1, -2))
    assert torch.equal(first, expected) and torch.equal(second, expected)
    assert len(calls) == 1


def test_out_of_memory_is_not_a_kernel_failure(monkeypatch):
    from types import SimpleNamespace

    from sparse_eval.methods import block_sparse

    def products(a, b, *_):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    fake = SimpleNamespace(supports=lambda a, b: True, products=products)
    monkeypatch.setattr(block_sparse, "tile_kernels", lambda name, x: fake)
    monkeypatch.setattr(block_sparse, "_products_failed", False)
    a = torch.randn(1, 4, 16)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        tile_products(a, a)
    assert not block_sparse._products_failed
