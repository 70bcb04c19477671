"""Fuse a selection helper's tensor passes on the GPU: run it compiled by inductor on CUDA inputs.

Selection and block-mask helpers are chains of elementwise passes, scans and scatters over the (heads, query
tiles, key tiles) grid; eagerly each pass reads and writes the whole grid (at 128k, 58.7M entries per pass).
Compiled, inductor fuses them into a few kernels. Only integer and boolean helpers, or float sums of small
integers that are exact in any order, are wrapped, so the fused results equal the eager ones bit for bit. Other
devices run eagerly; a helper whose compilation fails runs eagerly from then on (with one warning).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])


def fused(fn: F) -> F:
    """`fn` compiled (dynamic shapes) when any tensor argument is on CUDA, else `fn` itself."""
    compiled: Callable[..., Any] | None = None
    broken = False

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal compiled, broken
        if broken or not any(isinstance(a, torch.Tensor) and a.is_cuda for a in args):
            return fn(*args, **kwargs)
        if compiled is None:
            compiled = torch.compile(fn, dynamic=True)
        try:
            return compiled(*args, **kwargs)
        except Exception as error:  # compiling is an optimisation: the eager helper is always right
            broken = True
            warnings.warn(
                f"{fn.__name__}: compiling failed ({type(error).__name__}: {str(error)[:200]}); running eagerly",
                RuntimeWarning,
                stacklevel=2,
            )
            return fn(*args, **kwargs)

    wrapper.eager = fn  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
