"""Filler: sentences of known token counts that top a draft up to an exact length.

Two kinds of source:
- `FillerBank` (here): a fixed set of sentences grouped by token count in one tokenizer, computed once per
  tokenizer (one batched call) and drawn with replacement (story scenery, RULER noise);
- `StreamFiller` (`filler_stream.py`): a finite, per-sample pool drawn without replacement in the order
  it was made (RULER's distractor key-value sentences: each must be unique).
Both split a token total into sentence counts that sum to it exactly.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from longtasks.tokenizer import LengthTokenizer

MIN_SENTENCES_PER_COUNT = 20


class FillerSource(Protocol):
    """What the fitter needs from filler."""

    @property
    def min_count(self) -> int: ...

    def split(self, total: int, rng: random.Random) -> list[int] | None:
        """Sentence token counts summing exactly to `total`, or None if no way exists."""

    def draw(self, count: int, rng: random.Random, avoid: str | None = None) -> str:
        """A sentence of `count` tokens (with its leading separator)."""

    def has(self, count: int) -> bool:
        """Whether a sentence of `count` tokens can still be drawn."""


class FillerProvider(Protocol):
    """A draft's filler: resolved against the tokenizer (and, for per-sample pools, the budget)."""

    def source(self, tokenizer: LengthTokenizer, budget: int, rng: random.Random) -> FillerSource: ...


class _Reachable:
    """Totals that at most `parts` sentences of the given counts can make exactly (0 included)."""

    def __init__(self, counts: Sequence[int]) -> None:
        self.counts = tuple(counts)
        self._levels: list[frozenset[int]] = [frozenset({0})]

    def __call__(self, parts: int) -> frozenset[int]:
        while len(self._levels) <= parts:
            previous = self._levels[-1]
            self._levels.append(previous | {t + c for t in previous for c in self.counts})
        return self._levels[parts]

    def finish(self, remaining: int, rng: random.Random, counts: list[int], max_parts: int = 3) -> bool:
        """Append at most `max_parts` counts summing to `remaining`; False if impossible."""
        for parts_left in range(max_parts, 0, -1):
            if remaining == 0:
                return True
            if remaining not in self(parts_left):
                return False
            options = [c for c in self.counts if remaining - c in self(parts_left - 1)]
            c = options[rng.randrange(len(options))]
            counts.append(c)
            remaining -= c
        return remaining == 0


@dataclass(frozen=True)
class FillerBank:
    """Sentences (each with its leading separator, as they appear after another sentence) by token count."""

    by_count: dict[int, tuple[str, ...]]
    counts: tuple[int, ...]  # available counts, ascending
    finish_parts: int = 3  # sentences the exact finish may use (more for banks of few, similar sentences)
    _reachable: _Reachable = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_reachable", _Reachable(self.counts))

    @property
    def min_count(self) -> int:
        return self.counts[0]

    def has(self, count: int) -> bool:
        return count in self.by_count

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
        return self._reachable(parts)

    def split(self, total: int, rng: random.Random) -> list[int] | None:
        """Random sentence counts summing exactly to `total`, or None if no way exists.

        Sentences are drawn at random while the rest is large; the last few (`finish_parts`) are drawn
        among the counts that still leave an exact finish, so no length is systematically favoured.
        """
        counts: list[int] = []
        remaining = total
        finish = 3 * self.counts[-1]
        while remaining > finish:
            c = self.random_count(rng)
            counts.append(c)
            remaining -= c
        if not self._reachable.finish(remaining, rng, counts, self.finish_parts):
            return None
        return counts


def build_filler_bank(
    tokenizer: LengthTokenizer, sentences: Sequence[str], sep: str = " ", finish_parts: int = 3
) -> FillerBank:
    texts = [sep + s for s in sentences]
    counts = tokenizer.count_many(texts, keep=True)  # kept: long prompts are counted from them
    grouped: dict[int, list[str]] = {}
    for text, count in zip(texts, counts, strict=True):
        grouped.setdefault(count, []).append(text)
    if not grouped:
        raise ValueError("the filler bank is empty: its template produced no sentences")
    # Rare lengths (a handful of sentences) would repeat the same sentence all over a story.
    common = {c: v for c, v in grouped.items() if len(v) >= MIN_SENTENCES_PER_COUNT}
    if len(common) >= 8:
        grouped = common
    return FillerBank({c: tuple(v) for c, v in grouped.items()}, tuple(sorted(grouped)), finish_parts)


def filler_bank_for(
    tokenizer: LengthTokenizer, name: str, sentences: Callable[[], Sequence[str]], finish_parts: int = 3
) -> FillerBank:
    """The filler bank `name` for `tokenizer`, computed once per tokenizer object.

    Kept on the tokenizer itself rather than in a table keyed by its name: two tokenizers may share a
    name (e.g. built in memory) while counting differently."""
    key = f"filler_bank:{name}"
    if key not in tokenizer.memo:
        tokenizer.memo[key] = build_filler_bank(tokenizer, sentences(), finish_parts=finish_parts)
    return tokenizer.memo[key]


@dataclass(frozen=True)
class SharedBank:
    """A provider for a fixed sentence list shared by every sample (built once per tokenizer)."""

    name: str
    sentences: Callable[[], Sequence[str]]
    finish_parts: int = 3

    def source(self, tokenizer: LengthTokenizer, budget: int, rng: random.Random) -> FillerSource:
        return filler_bank_for(tokenizer, self.name, self.sentences, self.finish_parts)
