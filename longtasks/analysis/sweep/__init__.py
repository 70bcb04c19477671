"""`longtasks sweep`: run a (model x method x compression x length) grid through lm-eval, one output folder per
cell, resumable, then write the results table."""

from longtasks.analysis.sweep.grid import Cell, SweepSpec
from longtasks.analysis.sweep.runner import run_sweep

__all__ = ["Cell", "SweepSpec", "run_sweep"]
