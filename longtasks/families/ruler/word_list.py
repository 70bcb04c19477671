"""Size a numbered word list to an exact token budget.

The list "1. apple", "2. pear", ... (one item per line) holds `num_common` words `common_frequency` times
each and as many rare words, `rare_frequency` times each, as fit (the seed's binary search). A numbered
list has no filler to top it up, and with every word repeated a fixed number of times the total can only
move in steps of several tokens, so the last few tokens are matched by giving at most three rare words one
occurrence more or one less. Costs are cached per tokenizer: a word as " word" after its number, a number
as "\\n12." (the first item as "1.").
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

from longtasks.fit import LengthError, TooShort
from longtasks.task import Redraw
from longtasks.tokenizer import LengthTokenizer

_NUMBER_CHUNK = 4096
MIN_RARE_WORDS = 12
"""With fewer rare words there are too few ways to adjust the last tokens (the length is then too small)."""
_CHANGES = ((0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2), (3, 0), (2, 1), (1, 2), (0, 3))
"""(extra occurrences, removed occurrences) tried in this order: fewest changes first."""


class NoExactList(Redraw):
    """These words cannot make the exact total; another draw of words usually can."""


class NumberCosts:
    """Token cost of the number prefix of item i (cumulative, computed in chunks and cached)."""

    def __init__(self, tokenizer: LengthTokenizer) -> None:
        self._tokenizer = tokenizer
        self._cumulative = [0]  # [n] = cost of the prefixes of items 1..n
        self._single = [0]

    def _extend(self, n: int) -> None:
        while len(self._cumulative) <= n:
            start = len(self._cumulative)
            texts = [f"{i}." if i == 1 else f"\n{i}." for i in range(start, start + _NUMBER_CHUNK)]
            for cost in self._tokenizer.count_many(texts):
                self._single.append(cost)
                self._cumulative.append(self._cumulative[-1] + cost)

    def total(self, n: int) -> int:
        """Cost of the prefixes of items 1..n."""
        self._extend(n)
        return self._cumulative[n]

    def cost(self, i: int) -> int:
        self._extend(i)
        return self._single[i]


def number_costs(tokenizer: LengthTokenizer) -> NumberCosts:
    return tokenizer.memo.setdefault("cwe_number_costs", NumberCosts(tokenizer))


def word_costs(tokenizer: LengthTokenizer, words: Sequence[str]) -> dict[str, int]:
    """Cost of " word" for every word of the vocabulary (one batched call per tokenizer)."""
    key = f"cwe_word_costs:{len(words)}"
    if key not in tokenizer.memo:
        tokenizer.memo[key] = dict(zip(words, tokenizer.count_many([" " + w for w in words]), strict=True))
    return tokenizer.memo[key]


@dataclass(frozen=True)
class SizedList:
    """How often each word occurs; `adjusted` names the rare words one occurrence off `rare_frequency`."""

    frequencies: dict[str, int]
    num_rare: int
    adjusted: list[str]


def size_word_list(
    common: Sequence[str],
    rare_pool: Sequence[str],
    common_frequency: int,
    rare_frequency: int,
    budget: int,
    words: dict[str, int],
    numbers: NumberCosts,
    rng: random.Random,
) -> SizedList:
    """Occurrences whose numbered list costs exactly `budget` tokens; LengthError if impossible."""
    n_common = len(common) * common_frequency
    w_common = common_frequency * sum(words[w] for w in common)
    rare_prefix = list(itertools.accumulate((words[w] for w in rare_pool), initial=0))

    def total(m: int) -> int:
        return numbers.total(n_common + rare_frequency * m) + w_common + rare_frequency * rare_prefix[m]

    if total(0) > budget:
        raise TooShort(
            f"the length is too small: the {len(common)} common words x {common_frequency} alone take "
            f"{total(0) - budget} tokens more than the instructions leave (or use fewer / less frequent common "
            "words)"
        )
    most = bisect.bisect_right(range(len(rare_pool) + 1), budget, key=total) - 1
    if most == len(rare_pool) and budget - total(most) > 4 * rare_frequency * max(words.values()):
        raise LengthError(
            f"the vocabulary ({len(rare_pool) + len(common)} words) fills only about {total(most)} tokens with "
            f"rare_word_frequency={rare_frequency}; raise rare_word_frequency (and common_word_frequency with "
            "it) for this length"
        )
    for m in range(most, max(-1, most - 3), -1):
        found = _exact(m, budget, n_common, w_common + rare_frequency * rare_prefix[m], rare_pool, rare_frequency,
                       words, numbers, rng)  # fmt: skip
        if found is not None:
            added, removed = found
            frequencies = dict.fromkeys(common, common_frequency)
            frequencies.update(dict.fromkeys(rare_pool[:m], rare_frequency))
            for word in added:
                frequencies[word] += 1
            for word in removed:
                frequencies[word] -= 1
            return SizedList(frequencies, m, sorted(added + removed))
    if most < MIN_RARE_WORDS <= len(rare_pool):
        raise TooShort(
            f"only {most} rare words fit, too few to make the length exact (or use fewer / less frequent "
            "common words)"
        )
    raise NoExactList(
        f"no word list of exactly {budget} tokens found with these words; try a slightly different length"
    )


def _exact(
    m: int,
    budget: int,
    n_common: int,
    words_cost: int,
    rare_pool: Sequence[str],
    rare_frequency: int,
    words: dict[str, int],
    numbers: NumberCosts,
    rng: random.Random,
) -> tuple[list[str], list[str]] | None:
    """Rare words to give one occurrence more (added) or fewer (removed) so the total is exact."""
    by_cost: dict[int, list[str]] = {}
    for word in rare_pool[:m]:
        by_cost.setdefault(words[word], []).append(word)
    n = n_common + rare_frequency * m
    for add, remove in _CHANGES:
        if add + remove > m or (remove and rare_frequency < 2):
            continue
        needed = budget - numbers.total(n + add - remove) - words_cost
        picked = _pick(add, remove, needed, by_cost, rng)
        if picked is not None:
            return picked
    return None


def _pick(
    add: int, remove: int, needed: int, by_cost: dict[int, list[str]], rng: random.Random
) -> tuple[list[str], list[str]] | None:
    """Distinct words, `add` of them adding their cost and `remove` subtracting it, summing to `needed`."""
    costs = sorted(by_cost)
    for combo in itertools.product(costs, repeat=add + remove):
        if sum(combo[:add]) - sum(combo[add:]) != needed:
            continue
        chosen: list[str] = []
        for cost in combo:
            options = [w for w in by_cost[cost] if w not in chosen]
            if not options:
                break
            chosen.append(options[rng.randrange(len(options))])
        else:
            return chosen[:add], chosen[add:]
    return None
