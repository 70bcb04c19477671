"""The story's filler, counted in the sample's tokenizer.

- Scenery (`SceneryDraw`): sentences of the corpus that fit a chapter's scene, drawn by the family while
  it composes each chapter. Within a sample a sentence is used at most once while its pool has unused
  ones (so a sentence never repeats inside a chapter, and a prompt rarely repeats one at all).
- Interludes (`Interludes`, a per-sample `FillerProvider`): sentences that fit any scene; the generic
  fitter tops every chapter up with them to the exact length. Each sample cycles through every
  interlude of a length before it reuses one.

Token counts come from one batched count per tokenizer, kept on the tokenizer (`tokenizer.memo`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import islice

from longtasks.families.story.counting import count_pieces
from longtasks.families.story.world.scenery import SceneryCorpus, scenery_corpus
from longtasks.filler_bank import FillerBank, FillerSource, SharedBank
from longtasks.tokenizer import LengthTokenizer


def interlude_sentences() -> list[str]:
    """The interludes, without the leading space (the bank adds the separator)."""
    return [text[1:] for text in scenery_corpus().interludes]


SCENERY = SharedBank("story_interludes", interlude_sentences, finish_parts=5)
"""The story's filler bank: interludes, which state nothing a question can ask and fit any scene."""


def scenery_counts(tokenizer: LengthTokenizer) -> list[int]:
    """Tokens of every corpus sentence (with its leading space), counted once per tokenizer."""
    key = "story_scenery_counts"
    if key not in tokenizer.memo:
        tokenizer.memo[key] = count_pieces(tokenizer, scenery_corpus().texts, keep=True)
    return tokenizer.memo[key]


def lead_counts(tokenizer: LengthTokenizer, ids: list[int]) -> list[int]:
    """Tokens of corpus sentences that open a chapter (right after its heading: no leading space),
    counted on first use and kept on the tokenizer."""
    memo: dict[int, int] = tokenizer.memo.setdefault("story_lead_counts", {})
    missing = sorted({i for i in ids if i not in memo})
    if missing:
        bare = scenery_corpus().bare
        memo.update(zip(missing, count_pieces(tokenizer, [bare[i] for i in missing]), strict=True))
    return [memo[i] for i in ids]


_SCAN = 64
"""Pool entries looked at per draw: enough to pass the sentences used up or clashing with the chapter."""
_SHORTEST = 12  # stop looking below this budget: few sentences are that short (interludes fill the rest)


class SceneryDraw:
    """One sample's draws from the corpus: a sentence is reused only once its pool has none left."""

    def __init__(self, tokenizer: LengthTokenizer, rng: random.Random) -> None:
        self.corpus: SceneryCorpus = scenery_corpus()
        self.corpus.prepare(_SCAN)  # every pool and ring, once per process
        self.bare = self.corpus.bare
        self.counts = scenery_counts(tokenizer)
        self._rng = rng
        self._used: set[int] = set()
        self._state: dict[tuple[str, ...], list] = {}  # key -> [ring, size, cursor]

    def take(self, key: tuple[str, ...], budget: int, chapter: set[int], most: int = 1) -> list[int]:
        """Up to `most` sentence ids of pool `key` (see `SceneryCorpus.pool`), at most `budget` tokens in
        all, sharing no clause with each other or with the chapter (`chapter`: the clause parts it holds,
        updated here), so a chapter never says the same thing twice. Sentences the sample has not used
        come first; used ones only when the pool's next stretch has too few others."""
        state = self._state.get(key)
        if state is None:
            doubled, size = self.corpus.ring(key, _SCAN)
            state = self._state[key] = [doubled, size, int(self._rng.random() * size) if size else 0]
        doubled, size, start = state
        if not size:
            return []
        counts, used, parts = self.counts, self._used, self.corpus.parts
        isdisjoint = chapter.isdisjoint
        end = start + (size if size < _SCAN else _SCAN)
        taken: list[int] = []
        j = start
        for i in islice(doubled, start, end):
            j += 1
            if i in used or counts[i] > budget:
                continue
            clauses = parts[i]
            if not isdisjoint(clauses):
                continue
            taken.append(i)
            chapter.update(clauses)
            budget -= counts[i]
            if len(taken) == most or budget < _SHORTEST:
                break
        state[2] = j % size
        if not taken:  # rarely: reuse sentences the sample has used
            for i in doubled[start:end]:
                if i in used and counts[i] <= budget and parts[i].isdisjoint(chapter):
                    taken.append(i)
                    chapter.update(parts[i])
                    budget -= counts[i]
                    if len(taken) == most or budget < _SHORTEST:
                        break
        used.update(taken)
        return taken


@dataclass(frozen=True)
class Interludes:
    """The draft's filler: interludes for one sample (see the module docstring)."""

    def source(self, tokenizer: LengthTokenizer, budget: int, rng: random.Random) -> FillerSource:
        bank = SCENERY.source(tokenizer, budget, rng)
        assert isinstance(bank, FillerBank)
        return InterludeSource(bank, _finish_table(tokenizer, bank))


_FinishTable = list[dict[int, tuple[int, ...]]]


def _finish_table(tokenizer: LengthTokenizer, bank: FillerBank) -> _FinishTable:
    """For k = 0..finish_parts and every small total: the first counts of a way to make the total from
    at most k sentences (what `FillerBank.split` recomputes for every section, looked up instead). Each
    count appears in proportion to how many sentences have it (`_weighted`)."""
    key = "story_interlude_finish"
    if key not in tokenizer.memo:
        top = 3 * bank.counts[-1] + bank.counts[-1]
        weight = _weights(bank)
        table: _FinishTable = [{0: ()}]
        for parts in range(1, bank.finish_parts + 1):
            reach = bank.reachable(parts - 1)
            table.append(
                {
                    t: opts
                    for t in range(top + 1)
                    if (opts := tuple(c for c in bank.counts if t - c in reach for _ in range(weight[c])))
                }
            )
        tokenizer.memo[key] = table
    return tokenizer.memo[key]


def _weights(bank: FillerBank) -> dict[int, int]:
    """How often each count is drawn: in proportion to its sentences, so that a length with few
    sentences is not drawn as often as one with many (which would make its few sentences come back)."""
    fewest = min(len(v) for v in bank.by_count.values())
    return {c: max(1, round(len(bank.by_count[c]) / fewest)) for c in bank.counts}


class InterludeSource:
    """A `FillerSource` over the interlude bank that cycles through each length's sentences."""

    def __init__(self, bank: FillerBank, table: _FinishTable) -> None:
        self._bank = bank
        self._table = table
        self._next: dict[int, int] = {}
        self._weighted = tuple(c for c, w in _weights(bank).items() for _ in range(w))

    @property
    def min_count(self) -> int:
        return self._bank.min_count

    def has(self, count: int) -> bool:
        return self._bank.has(count)

    def draw(self, count: int, rng: random.Random, avoid: str | None = None) -> str:
        options = self._bank.by_count[count]
        position = self._next.get(count)
        if position is None:
            position = int(rng.random() * len(options))
        self._next[count] = position + 1
        return options[position % len(options)]

    def split(self, total: int, rng: random.Random) -> list[int] | None:
        """Like `FillerBank.split` (random counts while the rest is large, then an exact finish from at
        most `finish_parts` sentences), with the finish looked up in a table."""
        counts = self._bank.counts
        parts = self._bank.finish_parts
        out: list[int] = []
        remaining = total
        large = 3 * counts[-1]
        weighted = self._weighted
        while remaining > large:
            c = weighted[int(rng.random() * len(weighted))]
            out.append(c)
            remaining -= c
        for left in range(parts, 0, -1):
            if remaining == 0:
                return out
            options = self._table[left].get(remaining)
            if not options:
                return None
            c = options[int(rng.random() * len(options))]
            out.append(c)
            remaining -= c
        return out if remaining == 0 else None
