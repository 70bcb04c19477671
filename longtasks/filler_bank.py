"""Filler: sentences of known token counts that top a draft up to an exact length.

Two kinds of source:
- `FillerBank`: a fixed set of sentences grouped by token count in one tokenizer, computed once per
  tokenizer (one batched call) and drawn with replacement (story scenery, RULER noise);
- `StreamFiller`: a finite, per-sample pool drawn without replacement in the order it was made
  (RULER's distractor key-value sentences: each must be unique).
Both split a token total into sentence counts that sum to it exactly.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
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
    counts = tokenizer.count_many(texts)
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


class StreamFiller:
    """A per-sample pool of unique sentences, used in the order they were made and never twice.

    `split` takes sentences in pool order while the rest is large, then finishes exactly with up to
    `FINISH_PARTS` sentences of the counts still available; `draw` hands out the next unused sentence of
    a count.
    """

    FINISH_PARTS = 8
    MAX_BACKTRACK = 24

    def __init__(self, texts: Sequence[str], counts: Sequence[int]) -> None:
        if not texts:
            raise ValueError("a filler stream needs at least one sentence")
        self._order = list(zip(counts, texts, strict=True))
        self._queues: dict[int, deque[str]] = {}
        for count, text in self._order:
            self._queues.setdefault(count, deque()).append(text)
        self._counts = tuple(sorted(self._queues))

    @property
    def min_count(self) -> int:
        return self._counts[0]

    def has(self, count: int) -> bool:
        return bool(self._queues.get(count))

    def draw(self, count: int, rng: random.Random, avoid: str | None = None) -> str:
        queue = self._queues.get(count)
        if not queue:
            raise LookupError(f"no unused filler sentence of {count} tokens is left")
        return queue.popleft()

    def split(self, total: int, rng: random.Random) -> list[int] | None:
        counts: list[int] = []
        remaining = total
        finish = 3 * self._counts[-1]
        for count, _ in self._order:
            if remaining <= finish:
                break
            counts.append(count)
            remaining -= count
        if remaining > finish:
            return None
        left = {c: len(q) for c, q in self._queues.items()}
        for c in counts:
            left[c] -= 1
        for _ in range(self.MAX_BACKTRACK):
            # Finish with the sentences still unused; if the rest is no sum of them, give back the
            # last stream sentence and try again.
            tail = _bounded_sum(remaining, left, self.FINISH_PARTS)
            if tail is not None:
                return counts + tail
            if not counts:
                return None
            c = counts.pop()
            left[c] += 1
            remaining += c
        return None


def _bounded_sum(total: int, available: dict[int, int], max_parts: int) -> list[int] | None:
    """At most `max_parts` counts, each used no more often than available, summing to `total`."""
    values = sorted(c for c, n in available.items() if n > 0)

    @cache
    def search(rest: int, parts: int, start: int) -> tuple[int, ...] | None:
        if rest == 0:
            return ()
        if parts == 0:
            return None
        for i in range(start, len(values)):
            c = values[i]
            if c > rest:
                break
            for times in range(min(available[c], parts, rest // c), 0, -1):
                found = search(rest - times * c, parts - times, i + 1)
                if found is not None:
                    return (c,) * times + found
        return None

    found = search(total, max_parts, 0)
    return None if found is None else list(found)
