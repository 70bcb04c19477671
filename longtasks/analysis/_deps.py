"""Lazy imports of the `[analysis]` extra, with an error that says how to install it."""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRA_HINT = "pip install 'longtasks[analysis]'"


def require(module: str) -> ModuleType:
    """Import `module` (e.g. "pandas", "scipy.stats"), or raise ImportError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise ImportError(
            f"the analysis needs {module.split('.')[0]!r}, which is not installed: {EXTRA_HINT}"
        ) from error


def pandas() -> ModuleType:
    return require("pandas")


def pyplot() -> ModuleType:
    """matplotlib's pyplot on the non-interactive Agg backend (plots are files, never windows)."""
    matplotlib = require("matplotlib")
    matplotlib.use("Agg", force=False)
    return require("matplotlib.pyplot")
