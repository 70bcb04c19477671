"""Triton kernel modules for CPU tests: compiled on a CUDA machine, else run by triton's interpreter, else
skipped (triton is an optional GPU dependency; CI installs none)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

import pytest
import torch

_KERNELS = "sparse_eval.kernels"


def _triton_modules() -> list[str]:
    return [n for n in sys.modules if n.split(".")[0] == "triton" and not n.startswith("triton._C")]


@contextmanager
def interpreted_triton() -> Iterator[None]:
    """Triton's Python modules imported afresh with TRITON_INTERPRET=1, which every @triton.jit (triton's own
    tl.sum & co. included) reads when it is imported; torch may have imported triton before (torch._dynamo
    does). The previous modules are put back afterwards; the compiled extension is shared."""
    saved = {name: sys.modules[name] for name in _triton_modules()}
    for name in saved:
        del sys.modules[name]
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("TRITON_INTERPRET", "1")
            yield
    finally:
        for name in _triton_modules():
            del sys.modules[name]
        sys.modules.update(saved)


def _reload_kernels(name: str) -> ModuleType:
    """Reload the kernel modules already imported, then `name`: a kernel calls @triton.jit helpers of other
    kernel modules, which must come from the same triton (interpreted or compiled) as the caller."""
    for other in sorted(n for n in sys.modules if n.startswith(f"{_KERNELS}.") and n != name):
        importlib.reload(sys.modules[other])
    return importlib.reload(importlib.import_module(name))


def kernel_module(name: str, smoke: Callable[[ModuleType], object]) -> Iterator[ModuleType]:
    """Yield module `name` for a fixture: compiled on CUDA, else interpreted once `smoke(module)` runs (an
    interpreter that cannot run, e.g. triton 3.6's under numpy >= 2.4, skips the tests with the reason)."""
    pytest.importorskip("triton", reason="triton is not installed (optional GPU dependency)")
    if torch.cuda.is_available():
        yield importlib.import_module(name)
        return
    try:
        with interpreted_triton():
            module = _reload_kernels(name)
            try:
                smoke(module)
            except Exception as exc:
                pytest.skip(f"triton's interpreter does not run here: {exc!r}")
            yield module
    finally:
        _reload_kernels(name)  # compiled kernels again, with the original triton


def flexprefill_tiles_with_one_kernel(
    kernels: ModuleType, name: str, monkeypatch: pytest.MonkeyPatch, tau: float, seq_len: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(plain, fast): a flexprefill selection's tiles on small structured inputs with every tile kernel off,
    then with only kernel module `name` (`kernels`) on: a kernel that keeps the rule gives the same tiles."""
    from sparse_eval import get_method
    from sparse_eval.methods import flexprefill_rule

    device = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, 4, seq_len, 16, generator=g) + 0.5 * torch.randn(1, 4, 1, 16, generator=g)
    k = torch.randn(1, 2, seq_len, 16, generator=g) + 0.5 * torch.randn(1, 2, 1, 16, generator=g)
    method = get_method("flexprefill", compression=3.0, tau=tau, block_size=32, min_budget=64, last_q_size=48)
    monkeypatch.setattr(flexprefill_rule, "tile_kernels", lambda kernel, x: None)
    plain = method.select(q.to(device), k.to(device), scaling=0.25, layer_idx=0)
    monkeypatch.setattr(
        flexprefill_rule, "tile_kernels", lambda kernel, x: kernels if kernel == name else None
    )
    fast = method.select(q.to(device), k.to(device), scaling=0.25, layer_idx=0)
    return plain.blocks, fast.blocks
