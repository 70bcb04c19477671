"""What a task is to the generic core: a name, a family, an answer kind, typed knobs, a generation
budget, and a `build` that turns (knobs, scale, rng, context) into a `Draft`.

Families subclass `Task` with their own knobs type as the type parameter, so every override is typed
(no `type: ignore[override]`). The core never imports a family: tasks are found through the registry.
"""

from __future__ import annotations

import dataclasses
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, cast

from longtasks.draft import Draft
from longtasks.sample import AnswerKind
from longtasks.tokenizer import LengthTokenizer


@dataclass(frozen=True)
class Knobs:
    """Base of every task's knobs: a frozen dataclass whose fields carry the paper's defaults."""

    def validate(self) -> None:
        """Raise ValueError naming a bad value and what would work."""


K = TypeVar("K", bound=Knobs)


class Redraw(ValueError):
    """This random draw cannot pose the question (e.g. too few purchases); another draw may."""


@dataclass(frozen=True)
class BuildContext:
    """What a build may need beyond its knobs: the target length, how tokens are counted, the sample's
    index (a list of depths is cycled across samples, one per sample) and the run's seed (QA asks its
    questions in one order per seed, the same at every length).

    Most families ignore it (the core fits their drafts); a family that sizes its own context (a
    numbered word list) uses it to count.
    """

    length: int
    tokenizer: LengthTokenizer
    chat: bool
    index: int = 0
    seed: int = 0


class Task(ABC, Generic[K]):
    """A task of some family. Subclasses declare the class attributes and implement `build`."""

    name: ClassVar[str]
    family: ClassVar[str]
    description: ClassVar[str]
    answer_kind: ClassVar[AnswerKind]
    knobs_type: ClassVar[type[Knobs]]
    gen_budget: ClassVar[int]
    """Tokens a model may generate for its answer (lm-eval's `max_gen_toks`): room for the longest gold
    answer after a short explanation."""
    meta_type: ClassVar[type | None] = None
    """The dataclass of the family's per-row `meta` (None: the task stores none)."""
    source_license: ClassVar[str | None] = None
    """Hub licence id of third-party text the rows quote (e.g. "cc-by-sa-4.0"; "unknown" when unstated);
    None when every word is generated. The dataset card lists it and adds it to the licences."""
    redistributable: ClassVar[bool] = True
    """False when the source's licence does not clearly allow publishing its text: `longtasks push`
    refuses such a folder unless the user passes --allow-unlicensed-data."""

    def make_knobs(self, values: Mapping[str, Any] | None = None) -> K:
        """Typed knobs from a mapping (CLI / lm-eval metadata), with defaults and clear errors."""
        values = dict(values or {})
        known = {f.name: f for f in dataclasses.fields(self.knobs_type)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(
                f"unknown knob(s) {unknown} for task {self.name!r}; valid knobs: {sorted(known)}"
            )
        converted = {key: convert_knob(self.name, key, value, known[key]) for key, value in values.items()}
        knobs = self.knobs_type(**converted)
        knobs.validate()
        return cast(K, knobs)  # knobs_type is K's class

    def initial_scale(self, knobs: K, length: int) -> int:
        """A family-specific size (e.g. a story's chapter count) to try first; 0 when unused."""
        return 0

    def smaller_scale(self, knobs: K, scale: int) -> int | None:
        """The next size to try when the content did not fit the length; None to give up."""
        return None

    @abstractmethod
    def build(self, knobs: K, scale: int, rng: random.Random, context: BuildContext) -> Draft:
        """The sample's content, question, gold answer (from the task's own truth) and evidence."""


def convert_knob(task: str, key: str, value: Any, field: dataclasses.Field) -> Any:
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
