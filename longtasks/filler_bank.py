"""Filler sentences grouped by their token count in a given tokenizer.

The fitter tops the story up to an exact token budget by drawing sentences of known length, so
counts are computed once per tokenizer (one batched call) and reused for every sample.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from longtasks.tokenizer import LengthTokenizer


@dataclass(frozen=True)
class FillerBank:
    """Sentences (each with its leading space, as they appear after another sentence) by token count."""

    by_count: dict[int, tuple[str, ...]]
    counts: tuple[int, ...]  # available counts, ascending
    _table: dict[int, tuple[int, ...]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def min_count(self) -> int:
        return self.counts[0]

    @property
    def max_count(self) -> int:
        return self.counts[-1]

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

    def decompositions(self) -> dict[int, tuple[int, ...]]:
        """For each total up to 3 x the longest sentence, one way to write it as a sum of at most
        three available counts (computed once per bank)."""
        if not self._table:
            self._table.update(_decompose(self.counts, 3 * self.counts[-1]))
        return self._table


def _decompose(counts: tuple[int, ...], limit: int) -> dict[int, tuple[int, ...]]:
    table: dict[int, tuple[int, ...]] = {0: ()}
    for parts in range(1, 4):
        for total, combo in list(table.items()):
            if len(combo) != parts - 1:
                continue
            for c in counts:
                new = total + c
                if new <= limit and new not in table:
                    table[new] = (*combo, c)
    return table


def build_filler_bank(tokenizer: LengthTokenizer, sentences: list[str]) -> FillerBank:
    texts = [" " + s for s in sentences]
    counts = tokenizer.count_many(texts)
    grouped: dict[int, list[str]] = {}
    for text, count in zip(texts, counts, strict=True):
        grouped.setdefault(count, []).append(text)
    if not grouped:
        raise ValueError("the filler bank is empty: templates/story filler produced no sentences")
    return FillerBank(
        by_count={c: tuple(v) for c, v in grouped.items()},
        counts=tuple(sorted(grouped)),
    )


_BANKS: dict[tuple[str, str], FillerBank] = {}


def filler_bank_for(tokenizer: LengthTokenizer) -> FillerBank:
    """The filler bank for `tokenizer`, computed once per process."""
    from longtasks.world.filler import filler_sentences

    key = (tokenizer.name, tokenizer.revision)
    if key not in _BANKS:
        _BANKS[key] = build_filler_bank(tokenizer, filler_sentences())
    return _BANKS[key]
