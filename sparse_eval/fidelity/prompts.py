"""Story-retrieval prompts with their gold answers, tokenized for a given model (chat template applied).

The prompts come from `longtasks` (exact length in the model's own tokenizer). `longtasks` is imported
lazily, so sparse_eval keeps working without it; when it cannot build samples a clear error says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Prompt:
    """Token ids of a chat prompt (1, P) and of its gold answer in the task's answer format (1, A)."""

    prompt_ids: torch.Tensor
    answer_ids: torch.Tensor
    answer: list[str]


def story_prompts(tokenizer: Any, length: int, num: int, seed: int = 0, questions: int = 4) -> list[Prompt]:
    """`num` story_retrieval samples of exactly `length` tokens (chat template included) with `questions`
    questions each; the answer is teacher-forced as "<answer>a1\\na2...</answer>"."""
    try:
        import longtasks
        from longtasks.tokenizer import LengthTokenizer
    except ImportError as error:  # pragma: no cover - longtasks ships with this package
        raise RuntimeError(f"story prompts need the longtasks package: {error}") from error
    counter = LengthTokenizer.from_hf(getattr(tokenizer, "name_or_path", "model") or "model", tokenizer)
    samples = longtasks.generate_samples(
        "story_retrieval",
        length,
        num,
        seed=seed,
        tokenizer=counter,
        chat=True,
        knobs={"num_questions": questions},
    )
    prompts = []
    for sample in samples:
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": sample.prompt}], add_generation_prompt=True, tokenize=True
        )
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        answer = list(sample.answer) if isinstance(sample.answer, list | tuple) else [str(sample.answer)]
        answer_text = "<answer>" + "\n".join(answer) + "</answer>"
        answer_ids = tokenizer(answer_text, add_special_tokens=False).input_ids
        prompts.append(Prompt(torch.tensor([list(ids)]), torch.tensor([answer_ids]), answer))
    return prompts
