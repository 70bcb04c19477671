"""The RULER tasks' wording (`templates/ruler/`): prompt frame, questions and the sentences of the context."""

from __future__ import annotations

from functools import cache
from typing import Any

from longtasks.prompt import PromptFrame, answer_format, frame_from_template, render_snippet, yaml_templates
from longtasks.resources import templates_dir
from longtasks.sample import AnswerKind

_MARK = "\x00"


def wording(task: str, entry: str, **values: Any) -> str:
    """One line of `templates/ruler/text.yaml`, rendered."""
    return render_snippet("ruler", yaml_templates("ruler", "text.yaml")[task][entry], **values)


@cache
def _compiled(task: str, entry: str, slots: tuple[str, ...]) -> tuple[str, ...]:
    """A template rendered once with markers in its slots: literal pieces and slot names alternating."""
    return tuple(wording(task, entry, **{slot: f"{_MARK}{slot}{_MARK}" for slot in slots}).split(_MARK))


def fill(task: str, entry: str, **values: str) -> str:
    """Render a context sentence fast (thousands per sample): a plain join of the compiled pieces."""
    pieces = _compiled(task, entry, tuple(sorted(values)))
    return "".join(piece if i % 2 == 0 else values[piece] for i, piece in enumerate(pieces))


def ruler_frame(task: str, questions: list[str], kind: AnswerKind, example: str) -> PromptFrame:
    """The task's intro and questions (before and after the context) around the context."""
    return frame_from_template(
        "ruler",
        "prompt.j2",
        intro=wording(task, "intro"),
        questions=questions,
        answer_format=answer_format(kind, example, count=len(questions)),
    )


@cache
def noise_sentences() -> tuple[str, ...]:
    """The neutral sentences that pad variable tracking (RULER's noise, in several lengths)."""
    text = (templates_dir() / "ruler" / "noise.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())
