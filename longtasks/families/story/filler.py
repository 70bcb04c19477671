"""The story's filler, counted in the sample's tokenizer.

- Scenery (`SceneryDraw`): sentences of the corpus that fit a chapter's scene, drawn by the family while
  it composes each chapter. Within a sample a sentence is used at most once while its pool has unused
  ones (so a sentence never repeats inside a chapter, and a prompt rarely repeats one at all); the
  optional talk and protagonist lines are left out rather than used twice.
- Interludes (`Interludes`, a per-sample `FillerProvider`): sentences that fit any scene; the generic
  fitter tops every chapter up with them to the exact length. Each sample cycles through every
  interlude of a length before it reuses one, and picks lengths so that the few-sentence ones are
  rarely needed and no length runs out while others have sentences left (`_finish_table`,
  `InterludeSource._pick`): a 256k-token story uses about as many interludes as there are.

Token counts come from one batched count per tokenizer, kept on the tokenizer (`tokenizer.memo`).
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass

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
    """Tokens of corpus sentences that open a chapter (right after its heading: no leading space); every
    sentence is counted once per tokenizer, with the corpus (`scenery_counts`)."""
    key = "story_lead_counts"
    if key not in tokenizer.memo:
        tokenizer.memo[key] = count_pieces(tokenizer, scenery_corpus().bare)
    counts = tokenizer.memo[key]
    return [counts[i] for i in ids]


_SCAN = 64
"""Pool entries looked at per draw: enough to pass the sentences used up or clashing with the chapter."""
_SHORTEST = 12  # stop looking below this budget: few sentences are that short (interludes fill the rest)


def prepare(tokenizer: LengthTokenizer) -> None:
    """Build what every story sample reads, once per process and tokenizer (a no-op after that): the
    corpus with its pools and rings, its sentences' counts, the interlude bank and its finish table.
    `StoryTask.build` calls it before it pauses the garbage collector, so that these long-lived objects
    are promoted to the old generation then, not traversed later by a collection of young objects."""
    if "story_prepared" in tokenizer.memo:
        return
    scenery_corpus().prepare(_SCAN)
    scenery_counts(tokenizer)
    lead_counts(tokenizer, [])
    bank = SCENERY.source(tokenizer, 0, random.Random(0))
    assert isinstance(bank, FillerBank)
    _finish_table(tokenizer, bank)
    tokenizer.memo["story_prepared"] = True


class SceneryDraw:
    """One sample's draws from the corpus: a sentence is reused only once its pool has none left."""

    def __init__(self, tokenizer: LengthTokenizer, rng: random.Random) -> None:
        prepare(tokenizer)
        self.corpus: SceneryCorpus = scenery_corpus()
        self.bare = self.corpus.bare
        self.counts = scenery_counts(tokenizer)
        self._rng = rng
        self._used: set[int] = set()
        self._state: dict[tuple[str, ...], list] = {}  # key -> [ring, size, cursor]

    def take(
        self, key: tuple[str, ...], budget: int, chapter: set[int], most: int = 1, reuse: bool = True
    ) -> list[int]:
        """Up to `most` sentence ids of pool `key` (see `SceneryCorpus.pool`), at most `budget` tokens in
        all, sharing no clause with each other or with the chapter (`chapter`: the clause parts it holds,
        updated here), so a chapter never says the same thing twice. Sentences the sample has not used
        come first; used ones only when the pool's next stretch has too few others (and `reuse`)."""
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
        for i in itertools.islice(doubled, start, end):
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
        if not taken and reuse:  # rarely: reuse sentences the sample has used
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


_Choices = tuple[tuple[int, ...], tuple[float, ...]]  # counts, and their cumulative weights
_FinishTable = list[dict[int, _Choices]]


def _finish_table(tokenizer: LengthTokenizer, bank: FillerBank) -> _FinishTable:
    """For k = 0..finish_parts and every small total: the counts that can come first in a way to make the
    total from at most k sentences (what `FillerBank.split` recomputes for every section, looked up), with
    cumulative weights: a count's sentences times how plentiful the sentences of the best way to finish
    after it are (`_plenty`), so that lengths with few sentences are drawn rarely and none runs out long
    before the others."""
    key = "story_interlude_finish_choices"
    if key not in tokenizer.memo:
        top = 3 * bank.counts[-1] + bank.counts[-1]
        plenty = _plenty(bank, top)
        table: _FinishTable = [{}]
        for parts in range(1, bank.finish_parts + 1):
            table.append({})
            for t in range(top + 1):
                options = [c for c in bank.counts if c <= t and plenty[parts - 1][t - c] > 0]
                if options:
                    weights = [len(bank.by_count[c]) * plenty[parts - 1][t - c] for c in options]
                    table[parts][t] = (tuple(options), tuple(itertools.accumulate(weights)))
        tokenizer.memo[key] = table
    return tokenizer.memo[key]


def _plenty(bank: FillerBank, top: int) -> list[list[float]]:
    """[k][t]: over the ways to make t tokens from at most k sentences, the best product of each
    sentence's share of sentences (its length's sentences / the most of any length); 0 if there is no
    way. A way through the lengths with few sentences scores low, so the finish avoids them."""
    most = max(len(v) for v in bank.by_count.values())
    share = {c: len(bank.by_count[c]) / most for c in bank.counts}
    plenty = [[1.0] + [0.0] * top]
    for _ in range(bank.finish_parts):
        last = plenty[-1]
        plenty.append(
            [max([last[t]] + [share[c] * last[t - c] for c in bank.counts if c <= t]) for t in range(top + 1)]
        )
    return plenty


class InterludeSource:
    """A `FillerSource` over the interlude bank for one sample: each length's sentences are drawn in
    turn, and lengths are chosen as `_finish_table` weighs them."""

    def __init__(self, bank: FillerBank, table: _FinishTable) -> None:
        self._bank = bank
        self._table = table
        self._next: dict[int, int] = {}
        counts = bank.counts
        self._any = (counts, tuple(itertools.accumulate(len(bank.by_count[c]) for c in counts)))
        self._left = {c: len(bank.by_count[c]) for c in counts}  # sentences of each count not planned yet

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
        most `finish_parts` sentences), with the finish's choices looked up in a table."""
        parts = self._bank.finish_parts
        out: list[int] = []
        remaining = total
        large = 3 * self._bank.counts[-1]
        while remaining > large:
            c = self._pick(self._any, rng)
            out.append(c)
            remaining -= c
        table = self._table
        for left in range(parts, 0, -1):
            if remaining == 0:
                return out
            choices = table[left].get(remaining)
            if choices is None:
                return None
            c = self._pick(choices, rng)
            out.append(c)
            remaining -= c
        return out if remaining == 0 else None

    def _pick(self, choices: _Choices, rng: random.Random) -> int:
        """A count drawn by the choices' weights; if the sample has planned all its sentences already, the
        next choice that has some left (none left anywhere: the count drawn)."""
        counts, weights = choices
        k = bisect.bisect_right(weights, rng.random() * weights[-1])
        left = self._left
        if left[counts[k]] <= 0:
            k = next(
                (j % len(counts) for j in range(k + 1, k + len(counts)) if left[counts[j % len(counts)]] > 0),
                k,
            )
        left[counts[k]] -= 1
        return counts[k]
