"""Optional GPU kernels (Triton). Nothing here is imported unless a caller asks for it: `triton` is an optional
dependency, and every kernel has a torch path that gives the same result where it is missing."""

from __future__ import annotations

import functools
import importlib
from types import ModuleType


@functools.cache
def quest_kernels() -> ModuleType | None:
    """The Quest decode kernels module, or None when triton cannot be imported (CPU-only installs)."""
    try:
        return importlib.import_module("sparse_eval.kernels.quest_decode")
    except ImportError:
        return None
