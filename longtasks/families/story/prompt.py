"""The story tasks' prompt: instructions, the questions before and after the story, the answer format.

Wording lives in `templates/story/` (`prompt.j2`, `questions.yaml`).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

from longtasks.prompt import (
    PromptFrame,
    answer_format,
    frame_from_template,
    template_environment,
    yaml_templates,
)
from longtasks.sample import AnswerKind


@cache
def _question(kind: str, variant: str) -> jinja2.Template:
    return template_environment("story").from_string(yaml_templates("story", "questions.yaml")[kind][variant])


@cache
def _answer_format(kind: AnswerKind, example: str, count: int) -> str:
    return answer_format(kind, example, count=count)


def question_text(kind: str, variant: str, **values: Any) -> str:
    """The wording of one question, from `templates/story/questions.yaml` (compiled once)."""
    return _question(kind, variant).render(**values)


def story_frame(protagonist: str, questions: list[str], kind: AnswerKind, example: str) -> PromptFrame:
    """Instructions and questions (repeated after the story, as in the seed paper) around the story."""
    return frame_from_template(
        "story",
        "prompt.j2",
        protagonist=protagonist,
        questions=questions,
        answer_format=_answer_format(kind, example, len(questions)),
    )
