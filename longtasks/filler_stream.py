"""A per-sample pool of unique filler sentences (e.g. distractor key-value pairs), each used at most once.

`split` takes sentences in the order they were made while the rest is large, then finishes exactly with a
bounded-multiset subset sum over the sentences still unused. How much it leaves for that finish depends on
how spread the pool's token counts are: counts of 78-83 tokens can only make every large total from about
16 sentences up, counts of 49-71 from three.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Sequence

MAX_FINISH_PARTS = 32
MAX_BACKTRACK = 24


class StreamFiller:
    """Sentences used in pool order and never twice; `draw` hands out the next unused one of a count."""

    def __init__(self, texts: Sequence[str], counts: Sequence[int]) -> None:
        if not texts:
            raise ValueError("a filler stream needs at least one sentence")
        self._order = list(zip(counts, texts, strict=True))
        self._queues: dict[int, deque[str]] = {}
        for count, text in self._order:
            self._queues.setdefault(count, deque()).append(text)
        ranked = sorted(counts)
        low, high = ranked[len(ranked) // 10], ranked[(9 * len(ranked)) // 10]
        self.finish_parts = min(MAX_FINISH_PARTS, math.ceil(low / max(1, high - low)) + 2)
        self._finish_tokens = self.finish_parts * high

    @property
    def min_count(self) -> int:
        return min(self._queues)

    def has(self, count: int) -> bool:
        return bool(self._queues.get(count))

    def draw(self, count: int, rng: random.Random, avoid: str | None = None) -> str:
        queue = self._queues.get(count)
        if not queue:
            raise LookupError(f"no unused filler sentence of {count} tokens is left")
        return queue.popleft()

    def split(self, total: int, rng: random.Random) -> list[int] | None:
        """Sentence counts summing exactly to `total`, or None (too few sentences, or no exact sum)."""
        counts: list[int] = []
        remaining = total
        for count, _ in self._order:
            if remaining <= self._finish_tokens:
                break
            counts.append(count)
            remaining -= count
        if remaining > self._finish_tokens:
            return None
        left = {c: len(q) for c, q in self._queues.items()}
        for c in counts:
            left[c] -= 1
        for _ in range(MAX_BACKTRACK):
            tail = bounded_sum(remaining, left, self.finish_parts + 2, rng)
            if tail is not None:
                return counts + tail
            if not counts:
                return None
            c = counts.pop()  # give the last stream sentence back and try a larger finish
            left[c] += 1
            remaining += c
        return None


def bounded_sum(
    total: int, available: dict[int, int], max_parts: int, rng: random.Random
) -> list[int] | None:
    """At most `max_parts` values, each used no more often than `available` says, summing to `total`.

    A layered bitset dynamic programme: layer j, part count k holds the sums reachable with k values taken
    from the first j distinct values; the choice is then rebuilt backwards, at random among valid ones.
    """
    if total == 0:
        return []
    values = sorted(c for c, n in available.items() if n > 0 and 0 < c <= total)
    mask = (1 << (total + 1)) - 1
    layers = [[1] + [0] * max_parts]
    for c in values:
        previous = layers[-1]
        current = list(previous)
        for k in range(1, max_parts + 1):
            reach = previous[k]
            for t in range(1, min(available[c], k) + 1):
                reach |= previous[k - t] << (t * c)
            current[k] = reach & mask
        layers.append(current)
    parts = next((k for k in range(max_parts + 1) if layers[-1][k] >> total & 1), None)
    if parts is None:
        return None
    chosen: list[int] = []
    rest = total
    for j in range(len(values), 0, -1):
        c, previous = values[j - 1], layers[j - 1]
        options = [
            t
            for t in range(min(available[c], parts) + 1)
            if rest - t * c >= 0 and previous[parts - t] >> (rest - t * c) & 1
        ]
        t = options[rng.randrange(len(options))]
        chosen += [c] * t
        rest -= t * c
        parts -= t
    return chosen
