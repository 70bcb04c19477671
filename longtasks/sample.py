"""One generated task instance, and its flat row form (parquet / datasets / lm-eval docs)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

AnswerKind = Literal["text", "list", "set", "int_set"]
"""How a gold answer is compared: one string; an ordered list (one answer per question); a set of
strings; a set of integers (e.g. chapter numbers). Scorers dispatch on it."""


@dataclass(frozen=True)
class Sample:
    """A prompt of exactly `length` model-input tokens, its gold answer and where the evidence sits.

    `prompt` is the user message (what lm-eval's `doc_to_text` returns); when `chat` is true the model
    sees it wrapped in the tokenizer's chat template and `input_tokens` counts that wrapped text.
    `answer` is JSON-serialisable; rows store it JSON-encoded so every task shares one schema.
    """

    id: str
    task: str
    length: int
    input_tokens: int
    prompt: str
    question: str
    answer: Any
    answer_kind: AnswerKind
    tokenizer: str
    tokenizer_revision: str
    chat: bool
    seed: int
    index: int
    knobs: dict[str, Any]
    evidence_chapters: list[int]
    evidence_depths: list[float]
    num_chapters: int
    generator_version: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["answer"] = json.dumps(self.answer, ensure_ascii=False)
        row["knobs"] = json.dumps(self.knobs, sort_keys=True)
        row["extra"] = json.dumps(self.extra, sort_keys=True)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Sample:
        data = dict(row)
        for key in ("answer", "knobs", "extra"):
            if isinstance(data.get(key), str):
                data[key] = json.loads(data[key])
        data["evidence_chapters"] = list(data["evidence_chapters"])
        data["evidence_depths"] = list(data["evidence_depths"])
        return cls(**data)


def make_sample_id(task: str, length: int, seed: int, index: int) -> str:
    return f"{task}-{length}-s{seed}-{index}"
