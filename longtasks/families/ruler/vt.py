"""ruler_vt: which variables resolve to a value, through chains of assignments (the paper's VT).

`num_chains` chains of `num_hops` + 1 distinct five-letter variables: "VAR A = 12345.", then
"VAR B = VAR A." and so on; every chain has its own value. The gold answer is the first chain's
variables. Assignments of all chains are shuffled and scattered among neutral noise sentences.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from longtasks.draft import Draft, Section, Segment
from longtasks.families.ruler.strings import draw_unique, draw_variable
from longtasks.families.ruler.text import fill, noise_sentences, ruler_frame, wording
from longtasks.filler_bank import SharedBank
from longtasks.task import BuildContext, Knobs, Task

NOISE = SharedBank("ruler_noise", noise_sentences, finish_parts=6)
"""Few sentences of similar lengths: the exact finish may need up to six of them."""

VALUE_RANGE = (10000, 99999)
"""Chain values: five-digit integers, distinct within a sample (the seed's range)."""


@dataclass(frozen=True)
class VtKnobs(Knobs):
    """num_chains: assignment chains per sample (paper: 8); one is asked about, the others distract.
    num_hops: copy assignments per chain after the numeric one (paper: 4), so a chain has hops + 1 variables."""

    num_chains: int = 8
    num_hops: int = 4

    def validate(self) -> None:
        if not 1 <= self.num_chains <= 1000:
            raise ValueError(f"num_chains={self.num_chains} must be within 1..1000")
        if not 1 <= self.num_hops <= 1000:
            raise ValueError(f"num_hops={self.num_hops} must be within 1..1000")


@dataclass(frozen=True)
class VtMeta:
    """The value asked about and the asked chain's variables in chain order (the numeric one first)."""

    target_value: int
    target_chain: list[str]


class RulerVariableTracking(Task[VtKnobs]):
    name = "ruler_vt"
    family = "ruler"
    description = "Name every variable that resolves to a given value through a chain of assignments."
    answer_kind = "set"
    knobs_type = VtKnobs
    gen_budget = 256  # room for 5 variable names (<= 20 tokens) after a short explanation
    meta_type = VtMeta

    def build(self, knobs: VtKnobs, scale: int, rng: random.Random, context: BuildContext) -> Draft:
        used = set(re.findall(r"\b[A-Z]{5}\b", wording("vt", "intro")))  # the intro's example names
        per_chain = knobs.num_hops + 1
        names = [
            [draw_unique(draw_variable, rng, used) for _ in range(per_chain)] for _ in range(knobs.num_chains)
        ]
        values = rng.sample(range(*VALUE_RANGE), knobs.num_chains)
        segments: list[Segment] = []
        for c, (chain, value) in enumerate(zip(names, values, strict=True)):
            segments.append(Segment(fill("vt", "number", name=chain[0], value=str(value)), f"chain{c}.0"))
            for h in range(1, per_chain):
                sentence = fill("vt", "copy", name=chain[h], source=chain[h - 1])
                segments.append(Segment(sentence, f"chain{c}.{h}"))
        rng.shuffle(segments)
        question = wording("vt", "question", value=values[0])
        return Draft(
            frame=ruler_frame("vt", [question], self.answer_kind, "first variable, second variable, ..."),
            sections=(Section(None, tuple(segments)),),
            filler=NOISE,
            question=question,
            answer=names[0],
            evidence=tuple(f"chain0.{h}" for h in range(per_chain)),
            meta=VtMeta(values[0], names[0]),
        )
