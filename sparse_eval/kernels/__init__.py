"""Optional GPU kernels (Triton). Nothing here is imported unless a caller asks for it: `triton` is an optional
dependency, and every kernel has a torch path that gives the same result where it is missing."""

from __future__ import annotations

import functools
import importlib
from types import ModuleType


@functools.cache
def optional(name: str) -> ModuleType | None:
    """The kernel module `sparse_eval.kernels.<name>`, or None when triton cannot be imported (CPU-only
    installs): callers then take their torch path. Imported once per process."""
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ImportError:
        return None


def quest_kernels() -> ModuleType | None:
    """The Quest decode kernels module, or None without triton."""
    return optional("quest_decode")
