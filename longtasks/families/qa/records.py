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


def squad_pairs(rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, Question]]:
    """SQuAD 2.0 (`rajpurkar/squad_v2`): id, context, question, answers {text: [...]}; unanswerable
    questions (no answer) are skipped, as are answers that no scorer could read back (empty after
    normalisation)."""
    pairs = []
    for row in rows:
        answers = [one_line(a) for a in (row["answers"] or {}).get("text") or []]
        usable = tuple(dict.fromkeys(a for a in answers if check_item(a) is None))
        if usable:
            pairs.append((row["context"], Question(str(row["id"]), one_line(row["question"]), usable)))
    return pairs


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


def quality_pairs(rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, Question]]:
    """QuALITY (`tasksource/QuALITY`, one row per question): article, question, question_unique_id,
    options (4), gold_label (1-based)."""
    pairs = []
    for row in rows:
        options = list(row["options"] or [])
        label = row["gold_label"]
        if label == 0:
            raise SchemaError(
                "a QuALITY row has gold_label 0; QuALITY's labels count from 1 (1-4), so this copy numbers them "
                "differently and its answers would be shifted: use the tasksource/QuALITY schema"
            )
        if not options or not isinstance(label, int) or not 1 <= label <= min(len(options), len(LETTERS)):
            continue
        question = Question(
            str(row["question_unique_id"]), options_text(row["question"], options), LETTERS[label - 1]
        )
        pairs.append((plain_text(row["article"]), question))
    return pairs


def toefl_pairs(rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, Question]]:
    """TOEFL-QA in the seed paper's JSON lines: context, questions (options embedded), answer (letters,
    e.g. "BD"); one row per lecture. The "Question: " prefix is dropped, as the paper does."""
    pairs = []
    for row in rows:
        questions, answers = list(row["questions"] or []), list(row["answer"] or [])
        if len(questions) != len(answers):
            raise SchemaError(
                f"a TOEFL-QA row has {len(questions)} questions but {len(answers)} answers; the file is damaged"
            )
        for text, letters in zip(questions, answers, strict=True):
            text = text.strip().removeprefix("Question:").strip()
            letters = "".join(sorted(set(str(letters).strip().upper())))
            if not text or not letters or not set(letters) <= set(LETTERS):
                continue
            qid = hashlib.sha256(f"{row['context']}\x00{text}".encode()).hexdigest()[:12]
            pairs.append((row["context"], Question(qid, text, letters)))
    return pairs
