"""The largest compression that statistically preserves accuracy (PAPER_NOTES §2), per (model, length,
task, method): one test of "sparse is below dense" per compression, then the largest compression that passes."""

from longtasks.analysis.maxcomp.options import TestOptions
from longtasks.analysis.maxcomp.significance import drop_p_value
from longtasks.analysis.maxcomp.table import compression_tests, max_compression, summarize_max_compression

__all__ = ["TestOptions", "compression_tests", "drop_p_value", "max_compression", "summarize_max_compression"]
