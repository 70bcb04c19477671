"""Shared readers for the QA tests: the fixtures read independently of the generator, and prompts split
back into their numbered documents."""

from __future__ import annotations

import json
import re
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SQUAD_FILE = FIXTURES / "squad_v2" / "validation.jsonl"
QUALITY_FILE = FIXTURES / "quality" / "validation.jsonl"
TOEFL_FILE = FIXTURES / "toeflqa.jsonl"
PINNED_SQUAD = "rajpurkar/squad_v2@80596c4f2b9ffcd716039dfc7e564c4e491802ec"
_HEADING = re.compile(r"(?:^|\n\n)Document (\d+):\n")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def documents(prompt: str) -> list[tuple[int, str]]:
    """(number, text) of every document in the prompt's context, in order."""
    context = prompt[prompt.index("<context>\n") + 10 : prompt.rindex("\n</context>")]
    marks = list(_HEADING.finditer(context))
    return [
        (int(m.group(1)), context[m.end() : marks[i + 1].start() if i + 1 < len(marks) else len(context)])
        for i, m in enumerate(marks)
    ]


def asked_number(prompt: str) -> int:
    """The document number the question names (before and after the context, the same)."""
    before = re.findall(r"^Questions? about document (\d+):$", prompt[: prompt.index("<context>")], re.M)
    after = re.findall(r"^Questions? about document (\d+):$", prompt[prompt.rindex("</context>") :], re.M)
    assert before == after and len(before) == 1
    return int(before[0])


def squad_truth() -> dict[str, tuple[str, list[str]]]:
    """Question id -> (paragraph, answers) straight from the fixture file."""
    return {r["id"]: (r["context"], r["answers"]["text"]) for r in read_jsonl(SQUAD_FILE)}


def quality_truth() -> dict[str, tuple[str, str]]:
    """Question id -> (article as stored, correct letter)."""
    return {
        r["question_unique_id"]: (r["article"], "ABCD"[r["gold_label"] - 1]) for r in read_jsonl(QUALITY_FILE)
    }


def toefl_truth() -> dict[str, tuple[str, str]]:
    """Question text (without "Question: ") -> (lecture, letters)."""
    truth = {}
    for row in read_jsonl(TOEFL_FILE):
        for question, letters in zip(row["questions"], row["answer"], strict=True):
            truth[question.strip().removeprefix("Question:").strip()] = (row["context"], letters)
    return truth
