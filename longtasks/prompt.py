"""Paper-compatible prompt frames: the instructions and questions around a context, and the answer format.

Wording lives in `templates/` (each family has its folder; `templates/prompts/answer_formats.yaml` is shared).
A frame is rendered once with a marker where the context goes and split there, so the fitter can count
the frame's tokens once and give everything else to the context.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import jinja2
import yaml

from longtasks.resources import templates_dir
from longtasks.sample import AnswerKind

_CONTEXT_MARK = "\x00CONTEXT\x00"


@dataclass(frozen=True)
class PromptFrame:
    """The prompt around the context: ``prompt = prefix + context + suffix``."""

    prefix: str
    suffix: str

    def build(self, context: str) -> str:
        return self.prefix + context + self.suffix


@cache
def template_environment(folder: str) -> jinja2.Environment:
    """A strict jinja2 environment over `templates/<folder>`."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir() / folder)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


@cache
def yaml_templates(folder: str, name: str) -> dict[str, Any]:
    """A YAML file of one-line templates, `templates/<folder>/<name>`."""
    return yaml.safe_load((templates_dir() / folder / name).read_text(encoding="utf-8"))


def render_snippet(folder: str, text: str, **values: Any) -> str:
    """Render a one-line jinja2 snippet (from a YAML file of `templates/<folder>`)."""
    return compiled_snippet(folder, text).render(**values)


@lru_cache(maxsize=4096)
def compiled_snippet(folder: str, text: str) -> jinja2.Template:
    """A snippet compiled once: compiling took 94 of 131 s of a run rendering 47k needle lines."""
    return template_environment(folder).from_string(text)


def answer_format(kind: AnswerKind, example: str, count: int = 1) -> str:
    """How the model must write its final answer for an answer kind (shared by every family)."""
    text = yaml_templates("prompts", "answer_formats.yaml")[kind]
    return render_snippet("prompts", text, example=example, count=count)


def frame_from_template(folder: str, name: str, **values: Any) -> PromptFrame:
    """Render `templates/<folder>/<name>` with `context` left open; split it into a frame."""
    text = template_environment(folder).get_template(name).render(context=_CONTEXT_MARK, **values)
    prefix, suffix = text.split(_CONTEXT_MARK)
    return PromptFrame(prefix=prefix, suffix=suffix)
