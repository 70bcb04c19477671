"""ruler_cwe: the most common words of a long numbered word list (the paper's CWE).

`num_common_words` words appear `common_word_frequency` times each, every other word
`rare_word_frequency` times (at most three of them once more or once less, to land on the exact length),
all shuffled into one numbered list. The gold answer is the set of common words.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from longtasks.draft import Draft, Section, Segment
from longtasks.families.ruler.text import ruler_frame, wording
from longtasks.families.ruler.vocabulary import cwe_words
from longtasks.families.ruler.word_list import NoExactList, number_costs, size_word_list, word_costs
from longtasks.fit import count_model_text, frame_overhead
from longtasks.task import BuildContext, Knobs, Task

MAX_CORRECTIONS = 8
"""Re-sizings allowed when the tokenizer merges across list items (each corrects by the last miss)."""


@dataclass(frozen=True)
class CweKnobs(Knobs):
    """num_common_words: words to find (paper: 10). common_word_frequency: how often each appears
    (paper: 30). rare_word_frequency: how often every other word appears (paper: 3); the number of rare
    words grows with the length until the vocabulary runs out (about 128k-190k tokens at 3)."""

    num_common_words: int = 10
    common_word_frequency: int = 30
    rare_word_frequency: int = 3

    def validate(self) -> None:
        if not 1 <= self.num_common_words <= 1000:
            raise ValueError(f"num_common_words={self.num_common_words} must be within 1..1000")
        if self.rare_word_frequency < 1:
            raise ValueError(f"rare_word_frequency={self.rare_word_frequency} must be at least 1")
        if self.common_word_frequency < self.rare_word_frequency + 2:
            raise ValueError(
                f"common_word_frequency={self.common_word_frequency} must exceed rare_word_frequency + 1 "
                f"(= {self.rare_word_frequency + 1}), or the common words are not the most frequent"
            )


@dataclass(frozen=True)
class CweMeta:
    """Items in the list, distinct rare words, and the rare words one occurrence off their frequency."""

    num_items: int
    num_rare_words: int
    adjusted_words: list[str]


class RulerCommonWords(Task[CweKnobs]):
    name = "ruler_cwe"
    family = "ruler"
    description = "Find the k words that appear far more often than the others in a long numbered list."
    answer_kind = "set"
    knobs_type = CweKnobs
    gen_budget = 256  # room for 10 words (<= 40 tokens) after a short explanation
    meta_type = CweMeta

    def build(self, knobs: CweKnobs, scale: int, rng: random.Random, context: BuildContext) -> Draft:
        question = wording(
            "cwe",
            "question",
            num_common=knobs.num_common_words,
            common_frequency=knobs.common_word_frequency,
            rare_frequency=knobs.rare_word_frequency,
        )
        frame = ruler_frame("cwe", [question], self.answer_kind, "first word, second word, ...")
        # A word of the instructions in the list would be counted there too by a reader: leave those out.
        in_frame = set(re.findall(r"[a-z]+", (frame.prefix + frame.suffix).lower()))
        vocabulary = [word for word in cwe_words() if word not in in_frame]
        rng.shuffle(vocabulary)
        common = vocabulary[: knobs.num_common_words]
        common_set = set(common)
        rare_pool = vocabulary[knobs.num_common_words :]
        tokenizer = context.tokenizer
        words = word_costs(tokenizer, cwe_words())
        numbers = number_costs(tokenizer)
        probe = (Section(None, (Segment(f"1. {common[0]}"),), lead=True),)
        budget = context.length - frame_overhead(frame, probe, tokenizer, context.chat)
        for _ in range(MAX_CORRECTIONS):
            sized = size_word_list(
                common,
                rare_pool,
                knobs.common_word_frequency,
                knobs.rare_word_frequency,
                budget,
                words,
                numbers,
                rng,
            )
            occurrences = [word for word, times in sized.frequencies.items() for _ in range(times)]
            rng.shuffle(occurrences)
            seen: dict[str, int] = {}
            segments = []
            for i, word in enumerate(occurrences, start=1):
                k = seen[word] = seen.get(word, -1) + 1
                key = f"{word}.{k}" if word in common_set else None
                segments.append(Segment(f"{i}. {word}", key, numbers.cost(i) + words[word]))
            section = Section(None, tuple(segments), lead=True, sep="\n")
            actual = count_model_text(
                frame.build("\n".join(s.text for s in segments)), tokenizer, context.chat
            )
            if actual == context.length:
                answer = sorted(common)
                return Draft(
                    frame=frame,
                    sections=(section,),
                    filler=None,
                    question=question,
                    answer=answer,
                    evidence=tuple(f"{w}.{k}" for w in answer for k in range(knobs.common_word_frequency)),
                    meta=CweMeta(len(occurrences), sized.num_rare, sized.adjusted),
                )
            budget -= actual - context.length  # the tokenizer merged across items: correct and size again
        # Another shuffle of the words merges differently: a new draw, not a failed sample.
        raise NoExactList(
            f"could not size the word list to exactly {context.length} tokens with {tokenizer.name!r}"
        )
