"""`longtasks` stays light: importing the CLI and every analysis module loads neither torch nor sparse_eval,
nor the [analysis] extra's heavy libraries (they are imported when an analysis runs)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import longtasks.analysis

HEAVY = ["torch", "sparse_eval", "pandas", "scipy", "matplotlib", "statsmodels", "lm_eval"]


def test_analysis_modules_import_nothing_heavy():
    modules = [m.name for m in pkgutil.walk_packages(longtasks.analysis.__path__, "longtasks.analysis.")]
    assert "longtasks.analysis.sweep.runner" in modules and "longtasks.analysis.plots.isocost" in modules
    code = "\n".join([
        "import importlib, sys",
        "import longtasks.cli",
        *[f"importlib.import_module({name!r})" for name in modules],
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))",
    ])  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
