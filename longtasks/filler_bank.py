"""Filler sentences grouped by their token count in a given tokenizer.

The fitter tops the story up to an exact token budget by drawing sentences of known length, so
counts are computed once per tokenizer (one batched call) and reused for every sample.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from longtasks.tokenizer import LengthTokenizer

MIN_SENTENCES_PER_COUNT = 20


@dataclass(frozen=True)
class FillerBank:
    """Sentences (each with its leading space, as they appear after another sentence) by token count."""

    by_count: dict[int, tuple[str, ...]]
    counts: tuple[int, ...]  # available counts, ascending
    _reachable: list[frozenset[int]] = field(default_factory=list, compare=False, repr=False)

    @property
    def min_count(self) -> int:
        return self.counts[0]

    def draw(self, count: int, rng: random.Random, avoid: str | None = None) -> str:
        """A random sentence of `count` tokens, other than `avoid` (the previous one) when possible."""
        options = self.by_count[count]
        choice = options[rng.randrange(len(options))]
        if choice == avoid and len(options) > 1:
            choice = options[(options.index(choice) + 1) % len(options)]
        return choice

    def random_count(self, rng: random.Random) -> int:
        """A random available count."""
        return self.counts[rng.randrange(len(self.counts))]

    def reachable(self, parts: int) -> frozenset[int]:
        """Totals that at most `parts` sentences can make exactly (0 included)."""
        while len(self._reachable) <= parts:
            previous = self._reachable[-1] if self._reachable else frozenset({0})
            if not self._reachable:
                self._reachable.append(previous)
                continue
            self._reachable.append(previous | {t + c for t in previous for c in self.counts})
        return self._reachable[parts]

    def split(self, total: int, rng: random.Random) -> list[int] | None:
        """Random sentence counts summing exactly to `total`, or None if no way exists.

        Sentences are drawn at random while the rest is large; the last three are drawn among the
        counts that still leave an exact finish, so no length is systematically favoured.
        """
        counts: list[int] = []
        remaining = total
        finish = 3 * self.counts[-1]
        while remaining > finish:
            c = self.random_count(rng)
            counts.append(c)
            remaining -= c
        for parts_left in (3, 2, 1):
            if remaining == 0:
                break
            if remaining not in self.reachable(parts_left):
                return None
            options = [c for c in self.counts if remaining - c in self.reachable(parts_left - 1)]
            c = options[rng.randrange(len(options))]
            counts.append(c)
            remaining -= c
        return counts if remaining == 0 else None


def build_filler_bank(tokenizer: LengthTokenizer, sentences: list[str]) -> FillerBank:
    texts = [" " + s for s in sentences]
    counts = tokenizer.count_many(texts)
    grouped: dict[int, list[str]] = {}
    for text, count in zip(texts, counts, strict=True):
        grouped.setdefault(count, []).append(text)
    if not grouped:
        raise ValueError("the filler bank is empty: templates/story filler produced no sentences")
    # Rare lengths (a handful of sentences) would repeat the same sentence all over a story.
    common = {c: v for c, v in grouped.items() if len(v) >= MIN_SENTENCES_PER_COUNT}
    if len(common) >= 8:
        grouped = common
    return FillerBank(
        by_count={c: tuple(v) for c, v in grouped.items()},
        counts=tuple(sorted(grouped)),
    )


def filler_bank_for(tokenizer: LengthTokenizer) -> FillerBank:
    """The filler bank for `tokenizer`, computed once per tokenizer object.

    Kept on the tokenizer itself rather than in a table keyed by its name: two tokenizers may share a
    name (e.g. built in memory) while counting differently."""
    from longtasks.world.filler import filler_sentences

    if "filler_bank" not in tokenizer.memo:
        tokenizer.memo["filler_bank"] = build_filler_bank(tokenizer, filler_sentences())
    return tokenizer.memo["filler_bank"]
