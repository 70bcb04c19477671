"""The story tasks' prompt: instructions, the questions before and after the story, the answer format.

Wording lives in `templates/story/` (`prompt.j2`, `questions.yaml`).
"""

from __future__ import annotations

from typing import Any

from longtasks.prompt import PromptFrame, answer_format, frame_from_template, render_snippet, yaml_templates
from longtasks.sample import AnswerKind


def question_text(kind: str, variant: str, **values: Any) -> str:
    """The wording of one question, from `templates/story/questions.yaml`."""
    return render_snippet("story", yaml_templates("story", "questions.yaml")[kind][variant], **values)


def story_frame(protagonist: str, questions: list[str], kind: AnswerKind, example: str) -> PromptFrame:
    """Instructions and questions (repeated after the story, as in the seed paper) around the story."""
    return frame_from_template(
        "story",
        "prompt.j2",
        protagonist=protagonist,
        questions=questions,
        answer_format=answer_format(kind, example, count=len(questions)),
    )
