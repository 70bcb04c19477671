"""Arrange one sample's documents so that the prompt has exactly `length` tokens.

The seed paper's packing: whole distractor documents in shuffled order, each taken while it fits (one
that does not fit is skipped), then a word prefix of one more document fills the rest. Here the prefix is
sized to the token, so the fill ends on a whole word and the prompt is exact: costs are summed from cached
counts, the prompt is counted once, and a miss (a BPE merge across a boundary, another heading width)
moves the target and arranges again. Distractors come in passes, each a fresh shuffle of the pool; a pass
repeats only when one pass cannot fill the length. The answer-bearing document is placed at the asked
depth and appears exactly once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from longtasks.families.qa.costs import SEPARATOR, PoolCosts, piece
from longtasks.fit import LengthError, count_model_text
from longtasks.prompt import PromptFrame
from longtasks.task import Redraw
from longtasks.tokenizer import LengthTokenizer

MIN_PARTIAL = 12
"""Tokens the cut document needs at least: its heading, a few words and the blank line."""
MAX_CORRECTIONS = 6
PARTIAL_CANDIDATES = 8


class NoExactFill(Redraw, LengthError):
    """This draw could not be sized exactly; another draw (other distractors) usually can."""


@dataclass(frozen=True)
class Arranged:
    """The context as pieces in order (``Document i:`` + text), their token costs, and roles."""

    pieces: tuple[str, ...]
    tokens: tuple[int, ...]
    documents: tuple[int, ...]
    gold: int
    """Position of the answer-bearing document (its number is gold + 1)."""
    partial: int | None
    """Position of the cut document, None when whole documents filled the length."""
    prompt: str


class DistractorStream:
    """Distractor indices in passes, each pass a fresh shuffle of the same documents (drawn lazily)."""

    def __init__(self, indices: Sequence[int], rng: random.Random) -> None:
        if not indices:
            raise LengthError("no distractor document to fill the length with (the caller checks for one)")
        self._indices = list(indices)
        self._rng = rng
        self._order: list[int] = []

    @property
    def pass_size(self) -> int:
        return len(self._indices)

    @property
    def distinct(self) -> frozenset[int]:
        return frozenset(self._indices)

    def __getitem__(self, position: int) -> int:
        while len(self._order) <= position:
            batch = list(self._indices)
            self._rng.shuffle(batch)
            self._order += batch
        return self._order[position]


def _pack(
    costs: PoolCosts, gold: int, stream: DistractorStream, target: int, smallest: int
) -> tuple[list[int], int, int]:
    """Whole distractors taken greedily: (taken, tokens left for the cut document, stream position).

    A further pass starts only once every distinct distractor is in the context: room only shrinks (and
    headings do not get shorter), so a document skipped in a pass never fits later, and a second pass
    while one is still out would only add copies of taken ones; the cut document fills that room instead."""
    used = costs.header(1) + costs.bodies[gold]
    taken: list[int] = []
    position = 0
    distinct = stream.distinct
    while target - used >= smallest + costs.header(len(taken) + 2) + MIN_PARTIAL:
        if position and not distinct <= set(taken):
            break  # one pass left documents out: it could not have been the length that ran short
        before = len(taken)
        for _ in range(stream.pass_size):
            doc = stream[position]
            position += 1
            need = costs.header(len(taken) + 2) + costs.bodies[doc]
            if used + need + MIN_PARTIAL <= target:
                taken.append(doc)
                used += need
        if len(taken) == before:
            break
    return taken, target - used, position


def _candidates(
    costs: PoolCosts, stream: DistractorStream, start: int, taken: list[int], tokens: int
) -> list[int]:
    """Documents long enough to be cut to `tokens`, preferring ones not already in the context."""
    fresh, seen = [], []
    present = set(taken)
    for position in range(start, start + 2 * stream.pass_size):
        doc = stream[position]
        if costs.bodies[doc] > tokens and doc not in fresh and doc not in seen:
            (seen if doc in present else fresh).append(doc)
        if len(fresh) >= PARTIAL_CANDIDATES:
            break
    return (fresh + seen)[:PARTIAL_CANDIDATES]


def _gold_position(sizes: list[int], depth: float) -> int:
    """Index among the distractors before which the answer's document starts nearest to `depth`."""
    total = sum(sizes)
    best, offset, best_gap = 0, 0, abs(depth * total)
    for i, size in enumerate(sizes, start=1):
        offset += size
        gap = abs(offset - depth * total)
        if gap < best_gap:
            best, best_gap = i, gap
    return best


def _arrange_once(
    costs: PoolCosts, gold: int, stream: DistractorStream, target: int, depth: float, smallest: int
) -> tuple[list[int], list[str], list[int], int, int | None] | None:
    """(documents, piece texts, piece tokens, gold position, cut position) for a context of `target`
    tokens by the summed costs; None if no cut document lands exactly."""
    texts = [d.text for d in costs.pool.documents]
    taken, left, position = _pack(costs, gold, stream, target, smallest)
    if 0 < left < MIN_PARTIAL:
        return None
    sizes = [costs.header(i + 2) + costs.bodies[doc] for i, doc in enumerate(taken)]
    order = list(taken)
    if left:
        order.append(-1)  # the cut document's slot, last among the distractors
        sizes.append(left)
    at = _gold_position(sizes, depth)
    order.insert(at, gold)
    pieces = [piece(i + 1, texts[doc]) if doc >= 0 else "" for i, doc in enumerate(order)]
    tokens = [costs.header(i + 1) + costs.bodies[doc] if doc >= 0 else 0 for i, doc in enumerate(order)]
    cut = order.index(-1) if left else None
    if cut is not None:
        need = target - sum(tokens)
        for doc in _candidates(costs, stream, position, taken, need):
            found = costs.cut(doc, cut + 1, need)
            if found is not None:
                order[cut], pieces[cut], tokens[cut] = doc, piece(cut + 1, found[0]), found[1]
                break
        else:
            return None
    return order, pieces, tokens, at, cut


def arrange(
    costs: PoolCosts,
    gold: int,
    distractors: Sequence[int],
    depth: float,
    length: int,
    frame_for: Callable[[int], PromptFrame],
    overhead_for: Callable[[PromptFrame], int],
    tokenizer: LengthTokenizer,
    chat: bool,
    rng: random.Random,
) -> Arranged:
    """The documents of one sample at exactly `length` prompt tokens (NoExactFill when this draw cannot)."""
    stream = DistractorStream(distractors, rng)
    smallest = min(costs.bodies[d] for d in distractors)
    number = 1
    target = length - overhead_for(frame_for(number))
    for _ in range(2 * MAX_CORRECTIONS):  # each round re-measures the frame or corrects a counted miss
        arranged = _arrange_once(costs, gold, stream, target, depth, smallest)
        if arranged is None:
            raise NoExactFill(f"no distractor could be cut to fill exactly {length} tokens in this draw")
        order, pieces, tokens, at, cut = arranged
        if at + 1 != number:  # the question names another document number: re-measure the frame
            target += overhead_for(frame_for(number)) - overhead_for(frame_for(at + 1))
            number = at + 1
            continue
        prompt = frame_for(number).build(SEPARATOR.join(pieces))
        actual = count_model_text(prompt, tokenizer, chat)
        if actual == length:
            return Arranged(tuple(pieces), tuple(tokens), tuple(order), at, cut, prompt)
        target += length - actual  # a merge across a boundary moved the count: size again
    raise NoExactFill(f"could not size the documents to exactly {length} tokens with {tokenizer.name!r}")
