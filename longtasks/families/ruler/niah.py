"""ruler_niah: find the values of a few keys among many key-value sentences (the paper's NIAH).

Needles and distractors have the same form, "The value for key <key> is: <value>.", with keys and values
of four groups of eight characters; every key and value is unique in the sample. The distractors are
the filler: the core draws as many as the length needs, in the order they were made, never one twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from longtasks.depth import parse_depth_mode, target_depths
from longtasks.draft import Draft, Section, Segment
from longtasks.families.ruler.strings import draw_kv_string, draw_unique
from longtasks.families.ruler.text import fill, ruler_frame, wording
from longtasks.filler_bank import FillerSource
from longtasks.filler_stream import StreamFiller
from longtasks.task import BuildContext, Knobs, Task
from longtasks.tokenizer import LengthTokenizer

_BATCH = 256  # distractor sentences made (and counted) at a time
RESERVE = 64  # sentences beyond the budget, so the exact finish finds the counts it needs


@dataclass(frozen=True)
class NiahKnobs(Knobs):
    """num_queries: needles asked about per sample (paper: 4). depth: where the needles sit in the
    haystack: 'uniform' (random), 'stratified' (one per equal slice, shuffled) or comma-separated depths."""

    num_queries: int = 4
    depth: str = "uniform"

    def validate(self) -> None:
        if self.num_queries < 1:
            raise ValueError(f"num_queries={self.num_queries} must be at least 1")
        parse_depth_mode(self.depth)


@dataclass(frozen=True)
class NiahMeta:
    """The keys asked about, in question order (their values are the gold answer)."""

    needle_keys: list[str]


def kv_sentence(key: str, value: str) -> str:
    return fill("niah", "sentence", key=key, value=value)


@dataclass(frozen=True)
class KeyValueHaystack:
    """Distractor key-value sentences made for one sample, avoiding every string already used."""

    used: frozenset[str]

    def source(self, tokenizer: LengthTokenizer, budget: int, rng: random.Random) -> FillerSource:
        used = set(self.used)
        texts: list[str] = []
        counts: list[int] = []
        made = 0
        # Enough for the budget plus a reserve of about RESERVE sentences for the exact finish.
        while not texts or made < budget + RESERVE * made / len(texts):
            batch = [
                " "
                + kv_sentence(draw_unique(draw_kv_string, rng, used), draw_unique(draw_kv_string, rng, used))
                for _ in range(_BATCH)
            ]
            batch_counts = tokenizer.count_many(batch)
            texts += batch
            counts += batch_counts
            made += sum(batch_counts)
        return StreamFiller(texts, counts)


class RulerNiah(Task[NiahKnobs]):
    name = "ruler_niah"
    family = "ruler"
    description = "Give the values of k keys hidden among many key-value sentences of the same form."
    answer_kind = "list"
    knobs_type = NiahKnobs
    gen_budget = 512  # room for 4 values of 35 characters (<= 30 tokens each) after a short explanation
    meta_type = NiahMeta

    def build(self, knobs: NiahKnobs, scale: int, rng: random.Random, context: BuildContext) -> Draft:
        used: set[str] = set()
        keys = [draw_unique(draw_kv_string, rng, used) for _ in range(knobs.num_queries)]
        values = [draw_unique(draw_kv_string, rng, used) for _ in range(knobs.num_queries)]
        depths = target_depths(knobs.depth, knobs.num_queries, rng)
        segments = tuple(
            Segment(kv_sentence(key, value), f"needle{i}")
            for i, (key, value) in enumerate(zip(keys, values, strict=True))
        )
        questions = [wording("niah", "question", key=key) for key in keys]
        example = "\n".join(f"value of key {i + 1}" for i in range(min(3, len(keys)))) + (
            "\n..." if len(keys) > 3 else ""
        )
        return Draft(
            frame=ruler_frame("niah", questions, self.answer_kind, example),
            sections=(Section(None, segments, slots=tuple(depths)),),
            filler=KeyValueHaystack(frozenset(used)),
            question="\n".join(questions),
            answer=values,
            evidence=tuple(seg.key for seg in segments if seg.key is not None),
            meta=NiahMeta(keys),
        )
