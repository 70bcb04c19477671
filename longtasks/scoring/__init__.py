"""Exact, strict scorers for longtasks answers and the scoring API (no LLM judge).

`score_prediction` scores one model output; `score` scores a predictions file against a generated
dataset and returns a `ScoreReport` with per-sample metrics and confidence intervals.
"""

from longtasks.scoring.api import ScoreReport, score
from longtasks.scoring.metrics import score_prediction
from longtasks.scoring.normalize import normalize_text
from longtasks.scoring.parse import extract_answer, format_answer

__all__ = ["ScoreReport", "extract_answer", "format_answer", "normalize_text", "score", "score_prediction"]
