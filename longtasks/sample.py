"""One generated task instance and its flat row form: the one row schema of every family.

Parquet shards, `datasets` features, Hub validation and the card all read the columns from here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pyarrow as pa

AnswerKind = Literal["text", "list", "set", "int_set", "token_f1", "choices"]
"""How a gold answer is compared: one string; an ordered list (one answer per question); a set of
strings; a set of integers (e.g. chapter numbers); word-overlap F1 against acceptable answers (one list per
question, SQuAD); the exact set of option letters (one string per question, multiple choice). Scorers
dispatch on it."""

JSON_COLUMNS = ("answer", "knobs", "meta")
"""Columns stored as JSON text, so every task shares one schema whatever its answers, knobs and meta."""


@dataclass(frozen=True)
class Sample:
    """A prompt of exactly `length` model-input tokens, its gold answer and where the evidence sits.

    `prompt` is the user message (what lm-eval's `doc_to_text` returns); when `chat` is true the model
    sees it wrapped in the tokenizer's chat template and `input_tokens` counts that wrapped text.
    `evidence_depths` are the relative positions (0 = start, 1 = end of the context, in tokens) of the
    pieces of text that hold the answer, in answer order. `meta` holds the family's own fields (e.g. a
    story's chapter numbers), typed by the task's `meta_type`.
    """

    id: str
    task: str
    family: str
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
    evidence_depths: list[float]
    generator_version: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["answer"] = json.dumps(self.answer, ensure_ascii=False)
        row["knobs"] = json.dumps(self.knobs, sort_keys=True)
        row["meta"] = json.dumps(self.meta, sort_keys=True, ensure_ascii=False)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Sample:
        data = {name: row[name] for name in ROW_COLUMNS}
        for key in JSON_COLUMNS:
            if isinstance(data.get(key), str):
                data[key] = json.loads(data[key])
        data["evidence_depths"] = list(data["evidence_depths"])
        return cls(**data)


ROW_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Sample))
"""Every column of a row, in schema order."""


@cache
def row_schema() -> pa.Schema:
    """The Arrow schema of a row (pyarrow is imported only when rows are written or read)."""
    import pyarrow as pa

    types = {
        "length": pa.int64(),
        "input_tokens": pa.int64(),
        "prompt": pa.large_string(),
        "chat": pa.bool_(),
        "seed": pa.int64(),
        "index": pa.int64(),
        "evidence_depths": pa.list_(pa.float64()),
    }
    return pa.schema([(name, types.get(name, pa.string())) for name in ROW_COLUMNS])


def make_sample_id(task: str, length: int, seed: int, index: int) -> str:
    return f"{task}-{length}-s{seed}-{index}"
