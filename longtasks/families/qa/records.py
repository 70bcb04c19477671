"""Source rows -> a pool of documents, each with its valid questions (the seed paper's filters).

One reader per dataset schema turns rows into `Document`s; the shared rules: documents are unique by text
(first appearance order), a (question, document) pair occurs once (case-insensitive question), a SQuAD
question needs at least one answer (SQuAD 2.0's unanswerable questions have none), and a document without
a valid question is dropped (it is never a distractor either). `Pool.sha256` hashes what was read, so a row
records exactly which content it was built from.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from longtasks.scoring.token_f1 import check_item

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_HTML_TAG = re.compile(r"</?(?:p|br|div|span|i|b|em|strong|h\d)\b[^>]*>", re.IGNORECASE)


@dataclass(frozen=True)
class Question:
    """One question as the prompt shows it (options included) and its gold answer.

    `answer` is the tuple of acceptable answers (extractive) or the string of correct letters ("BD")."""

    id: str
    text: str
    answer: tuple[str, ...] | str


@dataclass(frozen=True)
class Document:
    text: str
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class Pool:
    documents: tuple[Document, ...]
    sha256: str
    """First 16 hex digits of the SHA-256 of every document and question read (canonical JSON)."""


Reader = Callable[[Iterable[Mapping[str, Any]]], list[tuple[str, Question]]]
"""Rows -> (document text, question) pairs, in row order."""


class SchemaError(ValueError):
    """Rows that do not have the columns a task's reader needs."""


def check_columns(task: str, columns: Iterable[str], needed: tuple[str, ...], schema: str) -> None:
    missing = [c for c in needed if c not in set(columns)]
    if missing:
        raise SchemaError(
            f"{task}: the source lacks column(s) {missing} (has {sorted(columns)}); it needs the {schema} schema"
        )


def build_pool(pairs: Iterable[tuple[str, Question]]) -> Pool:
    """Group pairs by document text, drop duplicate questions and question-less documents, hash it all."""
    by_text: dict[str, list[Question]] = {}
    seen: set[tuple[str, str]] = set()
    for text, question in pairs:
        text = text.strip()
        key = (" ".join(question.text.lower().split()), text)
        if not text or key in seen:
            continue
        seen.add(key)
        by_text.setdefault(text, []).append(question)
    documents = tuple(Document(text, tuple(qs)) for text, qs in by_text.items() if qs)
    canonical = json.dumps(
        [[d.text, [[q.id, q.text, q.answer] for q in d.questions]] for d in documents], ensure_ascii=False
    )
    return Pool(documents, hashlib.sha256(canonical.encode()).hexdigest()[:16])


def one_line(text: str) -> str:
    return " ".join(str(text).split())


_CSV_HINT = "; a CSV file cannot hold lists: give JSON lines or parquet"


def _shown(value: object) -> str:
    """A bad value for an error: its type and the start of its text."""
    return "null" if value is None else f"{type(value).__name__} {repr(value)[:40]}"


def _text(row: Mapping[str, Any], name: str) -> str:
    """Column `name` of a row as a string; SchemaError when it is missing or of another type."""
    value = row[name]
    if not isinstance(value, str):
        raise SchemaError(f"{name} is {_shown(value)}, not a string")
    return value


def _key(row: Mapping[str, Any], name: str) -> str:
    """An id column: a string or an integer, as text."""
    value = row[name]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise SchemaError(f"{name} is {_shown(value)}, not a string or integer")
    return str(value)


def _strings(value: object, name: str, column: bool = True) -> list[str]:
    """A list (null: empty) whose items are strings; SchemaError naming it otherwise. A whole `column`
    read as a string is what a CSV file gives: the error says so."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        hint = _CSV_HINT if column and isinstance(value, str) else ""
        raise SchemaError(f"{name} is {_shown(value)}, not a list of strings{hint}")
    for item in value:
        if not isinstance(item, str):
            raise SchemaError(f"{name} holds {_shown(item)}, not only strings")
    return list(value)


def _per_row(read: Callable[[Mapping[str, Any]], list[tuple[str, Question]]]) -> Reader:
    """A reader of all rows from a reader of one: a SchemaError names the row (counting from 1)."""

    def reader(rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, Question]]:
        pairs = []
        for number, row in enumerate(rows, start=1):
            try:
                pairs += read(row)
            except SchemaError as error:
                raise SchemaError(f"row {number}: {error}") from None
        return pairs

    reader.__doc__ = read.__doc__
    return reader


def _squad_row(row: Mapping[str, Any]) -> list[tuple[str, Question]]:
    """SQuAD 2.0 (`rajpurkar/squad_v2`): id, context, question, answers {text: [...]}; unanswerable
    questions (no answer) are skipped, as are blank questions and answers that no scorer could read back
    (empty after normalisation)."""
    found = row["answers"]
    if found is not None and not isinstance(found, Mapping):
        hint = _CSV_HINT if isinstance(found, str) else ""
        raise SchemaError(f"answers is {_shown(found)}, not {{text: [...]}}{hint}")
    answers = [one_line(a) for a in _strings((found or {}).get("text"), "answers.text", column=False)]
    context, question, qid = _text(row, "context"), one_line(_text(row, "question")), _key(row, "id")
    usable = tuple(dict.fromkeys(a for a in answers if check_item(a) is None))
    return [(context, Question(qid, question, usable))] if usable and question else []


squad_pairs = _per_row(_squad_row)


def options_text(question: str, options: list[str]) -> str:
    """A multiple-choice question with its options, one per line: "A. ...", "B. ..."."""
    return "\n".join([one_line(question), *(f"{LETTERS[i]}. {one_line(o)}" for i, o in enumerate(options))])


def plain_text(article: str) -> str:
    """An article as plain text: HTML paragraphs and line breaks become line breaks, other tags go."""
    if not _HTML_TAG.search(article):
        return article.strip()
    text = re.sub(r"<br\s*/?>", "\n", article, flags=re.IGNORECASE)
    text = re.sub(r"</p\s*>", "\n\n", text, flags=re.IGNORECASE)
    text = html.unescape(re.sub(r"<[^>]+>", "", text))
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _label(value: object, options: int) -> int | None:
    """QuALITY's 1-based gold label as an int (a numeric string or whole float too); None when unlabelled or
    naming no option of the row."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaError(f"gold_label is {_shown(value)}, not a number 1-{options}")
    if value == 0:
        raise SchemaError(
            "gold_label 0; QuALITY's labels count from 1 (1-4), so this copy numbers them "
            "differently and its answers would be shifted: use the tasksource/QuALITY schema"
        )
    return value if 1 <= value <= options else None  # no option of this row: skipped, as unlabelled


def _quality_row(row: Mapping[str, Any]) -> list[tuple[str, Question]]:
    """QuALITY (`tasksource/QuALITY`, one row per question): article, question, question_unique_id,
    options (4), gold_label (1-based; a numeric string is read as its number). Unlabelled, option-less
    and blank questions are skipped."""
    options = _strings(row["options"], "options")
    article, question, qid = _text(row, "article"), _text(row, "question"), _key(row, "question_unique_id")
    if not options:
        return []
    label = _label(row["gold_label"], min(len(options), len(LETTERS)))
    if label is None or not question.strip():
        return []
    return [(plain_text(article), Question(qid, options_text(question, options), LETTERS[label - 1]))]


quality_pairs = _per_row(_quality_row)


def _toefl_row(row: Mapping[str, Any]) -> list[tuple[str, Question]]:
    """TOEFL-QA in the seed paper's JSON lines: context, questions (options embedded), answer (letters,
    e.g. "BD"); one row per lecture. The "Question: " prefix is dropped, as the paper does."""
    questions, answers = _strings(row["questions"], "questions"), _strings(row["answer"], "answer")
    context = _text(row, "context")
    if len(questions) != len(answers):
        raise SchemaError(
            f"the row has {len(questions)} questions but {len(answers)} answers; the file is damaged"
        )
    pairs = []
    for text, letters in zip(questions, answers, strict=True):
        text = text.strip().removeprefix("Question:").strip()
        letters = "".join(sorted(set(letters.strip().upper())))
        if not text or not letters or not set(letters) <= set(LETTERS):
            continue
        qid = hashlib.sha256(f"{context}\x00{text}".encode()).hexdigest()[:12]
        pairs.append((context, Question(qid, text, letters)))
    return pairs


toefl_pairs = _per_row(_toefl_row)
