"""Paper-compatible prompts: instructions, the questions before and after the story, and the
answer format (`<answer>…</answer>`). Wording lives in `templates/prompts/`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import jinja2
import yaml

from longtasks.resources import templates_dir
from longtasks.sample import AnswerKind

_CONTEXT_MARK = "\x00CONTEXT\x00"


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir() / "prompts")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


@cache
def _yaml_templates(name: str) -> dict[str, Any]:
    return yaml.safe_load((templates_dir() / "prompts" / name).read_text(encoding="utf-8"))


def render_snippet(text: str, **values: Any) -> str:
    """Render a one-line jinja2 snippet from the prompt YAML files."""
    return _environment().from_string(text).render(**values)


def question_text(family: str, variant: str, **values: Any) -> str:
    """The wording of one question, from `templates/prompts/questions.yaml`."""
    return render_snippet(_yaml_templates("questions.yaml")[family][variant], **values)


def answer_format(kind: AnswerKind, example: str, count: int = 1) -> str:
    return render_snippet(_yaml_templates("answer_formats.yaml")[kind], example=example, count=count)


@dataclass(frozen=True)
class PromptFrame:
    """The prompt around the story: ``prompt = prefix + context + suffix``.

    Keeping the frame separate lets the fitter count its tokens once and give the rest to the story.
    """

    prefix: str
    suffix: str

    def build(self, context: str) -> str:
        return self.prefix + context + self.suffix


def story_frame(protagonist: str, questions: list[str], kind: AnswerKind, example: str) -> PromptFrame:
    """Instructions and questions (repeated after the story, as in the seed paper) around the story."""
    text = (
        _environment()
        .get_template("story.j2")
        .render(
            protagonist=protagonist,
            questions=questions,
            context=_CONTEXT_MARK,
            answer_format=answer_format(kind, example, count=len(questions)),
        )
    )
    prefix, suffix = text.split(_CONTEXT_MARK)
    return PromptFrame(prefix=prefix, suffix=suffix)
