"""Scaling laws of accuracy in model size N, length L and compression C (PAPER_NOTES §3):
accuracy = link^-1(eps + delta_task + alpha ln N + beta ln L + gamma ln C), fitted per phase, with held-out-axis
evaluation (the largest model / longest length / highest compression predicted from the rest)."""

from longtasks.analysis.scaling.cells import cells_for_phase
from longtasks.analysis.scaling.evaluate import HELD_OUT_AXES, HeldOutResult, held_out_fit
from longtasks.analysis.scaling.fit import FittedLaw, fit_law
from longtasks.analysis.scaling.law import LINKS, ScalingLaw

__all__ = [
    "HELD_OUT_AXES", "LINKS", "FittedLaw", "HeldOutResult", "ScalingLaw", "cells_for_phase", "fit_law", "held_out_fit",
]  # fmt: skip
