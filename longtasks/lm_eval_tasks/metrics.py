"""lm-eval hooks that score a generation with the package's strict scorers.

`process_results` returns, per document, ``score`` (the headline number), ``parsed`` (whether an
``<answer>`` block of the right shape was found) and one key named after the document's length
(``"4096"``), as lm-eval's RULER port does. Unlike RULER it does not emit a placeholder for the
other lengths: lm-eval aggregates each key over the documents that produced it, so each length
column is the mean over that length's documents, its stderr is honest, and a length with no
documents (``--limit``, or a length not requested) is simply absent instead of a -1.
"""

from __future__ import annotations

import json
from typing import Any

from longtasks.scoring import format_answer, score_prediction

HEADLINE_METRICS = ("score", "parsed")
"""Metrics reported over all lengths; per-length columns use the score."""


def length_metric(length: int) -> str:
    """Name of the per-length column: the length in tokens, e.g. ``"4096"``."""
    return str(int(length))


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """Score the model's generation for one document (lm-eval passes one string per request)."""
    prediction = results[0] if results else ""
    metrics = score_prediction(doc["answer_kind"], prediction or "", doc["answer"])
    score = float(metrics["score"])
    return {
        "score": score,
        "parsed": float(metrics.get("parsed", 1.0 if score > 0 else 0.0)),
        length_metric(doc["length"]): score,
    }


def doc_to_target(doc: dict[str, Any]) -> str:
    """The gold answer written the way a perfect model writes it (shown in lm-eval's sample logs)."""
    answer = doc["answer"]
    return format_answer(doc["answer_kind"], json.loads(answer) if isinstance(answer, str) else answer)
