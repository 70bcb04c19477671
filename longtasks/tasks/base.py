"""What a story task is: typed knobs with the paper's defaults, and the questions it asks of a world."""

from __future__ import annotations

import dataclasses
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from longtasks.sample import AnswerKind
from longtasks.world import World, WorldConfig


@dataclass(frozen=True)
class StoryKnobs:
    """Knobs every story task shares.

    chapter_tokens: average tokens per chapter; the chapter count grows with the length (a 1M-token
        story has thousands of chapters). num_chapters: fix the chapter count instead (0 = automatic).
    """

    chapter_tokens: int = 300
    num_chapters: int = 0

    def validate(self) -> None:
        if self.chapter_tokens < 40:
            raise ValueError(f"chapter_tokens={self.chapter_tokens} is too small: use at least 40")
        if self.num_chapters < 0:
            raise ValueError(f"num_chapters={self.num_chapters} must be 0 (automatic) or positive")


class WorldTooSmall(ValueError):
    """This random world cannot pose the question (e.g. too few purchases); another draw may."""


@dataclass(frozen=True)
class Evidence:
    """Where a gold fact is stated: a chapter and, if the fact is one sentence, its kind and value."""

    chapter: int
    kind: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class TaskQuestions:
    questions: list[str]
    answer: Any
    evidence: list[Evidence]
    example: str  # a format example for the answer instructions (never a real answer)


class StoryTask(ABC):
    """A task over a simulated story world. Subclasses declare knobs and ask questions; generation,
    rendering and exact-length fitting are shared."""

    name: ClassVar[str]
    description: ClassVar[str]
    answer_kind: ClassVar[AnswerKind]
    knobs_type: ClassVar[type[StoryKnobs]]

    def make_knobs(self, values: Mapping[str, Any] | None = None) -> StoryKnobs:
        """Typed knobs from a mapping (CLI / lm-eval metadata), with defaults and clear errors."""
        values = dict(values or {})
        fields = {f.name: f for f in dataclasses.fields(self.knobs_type)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(
                f"unknown knob(s) {unknown} for task {self.name!r}; valid knobs: {sorted(fields)}"
            )
        converted = {key: _convert(self.name, key, value, fields[key]) for key, value in values.items()}
        knobs = self.knobs_type(**converted)
        knobs.validate()
        return knobs

    def min_chapters(self, knobs: StoryKnobs) -> int:
        return 2

    def world_config(self, knobs: StoryKnobs, num_chapters: int, rng: random.Random) -> WorldConfig:
        return WorldConfig()

    @abstractmethod
    def ask(self, world: World, knobs: StoryKnobs, rng: random.Random) -> TaskQuestions:
        """Questions, gold answer (from the world state, never from the text) and evidence."""


def _convert(task: str, key: str, value: Any, field: dataclasses.Field) -> Any:
    """Coerce CLI/metadata strings to the knob's declared type."""
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    try:
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() in {"1", "true", "yes", "on"}:
                    return True
                if value.lower() in {"0", "false", "no", "off"}:
                    return False
                raise ValueError
            return bool(value)
        if kind == "str":
            return str(value)
    except (TypeError, ValueError):
        raise ValueError(f"knob {key}={value!r} for task {task!r} is not a valid {kind}") from None
    return value
