"""What a task hands the generic core: a draft of one sample before it is fitted to an exact length.

A family builds the content (facts, needles, assignments, words) and the question; the core decides how
much filler goes where, so that the prompt the model reads has exactly `length` tokens. Evidence is named
by segment keys, so the core can report where each piece of evidence landed without knowing the family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from longtasks.prompt import PromptFrame

if TYPE_CHECKING:
    from longtasks.filler_bank import FillerProvider


@dataclass(frozen=True)
class Segment:
    """A piece of the context the task needs verbatim (a fact, a needle, a list item).

    `key` names it as evidence (its depth is recorded); `tokens` may carry a cost the family already
    measured in context, so the core need not count it again.
    """

    text: str
    key: str | None = None
    tokens: int | None = None


@dataclass(frozen=True)
class Section:
    """A run of the context: an optional heading line, then segments among filler sentences.

    Placement of the segments among the section's filler:
    - `lead`: the first segment comes right after the heading; the others at random places, in order;
    - `slots`: one relative position per segment (0 = before all filler, 1 = after it), e.g. needle depths;
    - otherwise every segment at a random place, in the given order.
    Pieces are joined with `sep` (filler sentences carry it too).
    """

    heading: str | None
    segments: tuple[Segment, ...]
    lead: bool = False
    slots: tuple[float, ...] | None = None
    sep: str = " "

    def __post_init__(self) -> None:
        if self.slots is not None and len(self.slots) != len(self.segments):
            raise ValueError(
                f"{len(self.slots)} slots for {len(self.segments)} segments: give one per segment"
            )
        if self.lead and not self.segments:
            raise ValueError("a lead section needs at least one segment")


@dataclass(frozen=True)
class Draft:
    """One sample before fitting.

    `filler` tops the sections up to the exact length; None means the family sized the context itself
    (the core then only verifies the length). `evidence` lists the keys of the segments that hold the
    answer, in answer order. `meta` is the family's typed, JSON-able record for the row; `truth` is the
    family's own model of the sample (e.g. the simulated world), kept for checks and never stored.
    """

    frame: PromptFrame
    sections: tuple[Section, ...]
    filler: FillerProvider | None
    question: str
    answer: Any
    evidence: tuple[str, ...]
    meta: Any = None
    truth: Any = None

    def __post_init__(self) -> None:
        if not self.sections or not self.sections[0].segments:
            raise ValueError("a draft needs at least one section whose first segment exists")
        if len(self.sections) > 1 and any(s.heading is None for s in self.sections):
            raise ValueError("a draft with several sections needs a heading for each of them")
        keys = [seg.key for section in self.sections for seg in section.segments if seg.key is not None]
        missing = sorted(set(self.evidence) - set(keys))
        if missing:
            raise ValueError(f"evidence key(s) {missing[:5]} name no segment of the draft")
