"""Check that the generation budget leaves room for every gold answer.

A task's `max_gen_toks` comes from the registry, but some answers grow with the context (the final
inventory) or with the knobs (more retrieval questions). An answer that cannot fit would be cut off
and scored 0 for the wrong reason, so the dataset function refuses such a run up front.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from longtasks.scoring import format_answer
from longtasks.tokenizer import LengthTokenizer

MIN_EXPLANATION_TOKENS = 32
"""Tokens the budget must leave beyond the longest gold answer (the prompt allows a brief explanation)."""


def longest_answer_tokens(rows: Iterable[Mapping[str, Any]], tokenizer: LengthTokenizer) -> int:
    """Tokens of the longest gold answer written as a perfect model would (tags included)."""
    texts = []
    for row in rows:
        answer = row["answer"]
        texts.append(
            format_answer(row["answer_kind"], json.loads(answer) if isinstance(answer, str) else answer)
        )
    return max(tokenizer.count_many(texts), default=0)


def check_answer_budget(
    task: str, rows: list[Mapping[str, Any]], tokenizer: LengthTokenizer, budget: int | None
) -> None:
    """ValueError when the longest gold answer plus a brief explanation does not fit `budget`."""
    if budget is None or not rows:
        return
    longest = longest_answer_tokens(rows, tokenizer)
    if longest + MIN_EXPLANATION_TOKENS > budget:
        suggested = 2 * longest + MIN_EXPLANATION_TOKENS
        raise ValueError(
            f"{task}: a gold answer takes {longest} tokens, which leaves no room in the generation budget "
            f"of {budget} tokens (max_gen_toks); raise it, e.g. to {suggested}: `longtasks eval --gen_kwargs "
            f"max_gen_toks={suggested}`, `longtasks sweep --gen-kwargs max_gen_toks={suggested}`, plain lm-eval "
            f"--gen_kwargs max_gen_toks={suggested} --metadata gen_budget={suggested}"
        )
