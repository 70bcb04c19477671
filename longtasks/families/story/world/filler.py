"""A bank of scenery sentences that pad chapters to an exact token budget.

The fitter tops a budget up by picking sentences by token length, so the bank spans short to long
sentences (about 4-45 tokens) with many sentences of every length. It is built combinatorially
from `templates/story/filler_*.j2`: short sentences as they are, plus clauses of different scene
groups joined by the patterns of `filler_joins.j2`. Filler never states anything a question can ask.
"""

from __future__ import annotations

import random
from functools import cache

import jinja2

from longtasks.resources import templates_dir

_SEED = 1_234_567  # fixed: the bank is part of the generator's definition, not of a sample's seed
_PER_SIZE = 120  # sentences kept per estimated length
_SIZES = range(4, 46)  # estimated token lengths kept (words + punctuation marks)
_COMBOS_PER_PATTERN = 2500
_MARK = "\x00"
_SLOTS = ("a", "b", "c", "d")


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir() / "story")),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _estimate(sentence: str) -> int:
    """A tokenizer-free length proxy: words plus punctuation marks (close to BPE counts for prose)."""
    return len(sentence.split()) + sum(sentence.count(mark) for mark in ",;.")


def _candidates() -> list[str]:
    env = _environment()
    shorts = _lines(env.get_template("filler_short.j2").render())
    groups: dict[str, list[str]] = {}
    for line in _lines(env.get_template("filler_clauses.j2").render()):
        group, _, clause = line.partition("|")
        if not clause:
            raise ValueError(f"filler_clauses.j2 line {line!r} must read 'group|clause'")
        groups.setdefault(group, []).append(clause)
    rendered = env.get_template("filler_joins.j2").render({s: f"{_MARK}{s}{_MARK}" for s in _SLOTS})
    patterns = [tuple(line.split(_MARK)) for line in _lines(rendered)]

    rng = random.Random(_SEED)
    names = sorted(groups)
    sentences = [*shorts]
    for pieces in patterns:
        arity = len(pieces) // 2
        if arity > len(names):
            raise ValueError(
                f"filler_joins.j2 pattern uses {arity} clauses but only {len(names)} groups exist"
            )
        for _ in range(_COMBOS_PER_PATTERN):
            chosen = iter(rng.choice(groups[g]) for g in rng.sample(names, arity))
            parts = [piece if i % 2 == 0 else next(chosen) for i, piece in enumerate(pieces)]
            text = "".join(parts)
            sentences.append(text[0].upper() + text[1:] + ".")
    rng.shuffle(sentences)  # so each length keeps a varied mix, not the first rows of one grid
    return sentences


@cache
def filler_sentences() -> list[str]:
    """The filler bank: distinct sentences in a fixed, shuffled order (same list on every call).

    Callers must not mutate the returned list (it is cached); copy it first.
    """
    by_size: dict[int, list[str]] = {size: [] for size in _SIZES}
    seen: set[str] = set()
    for sentence in _candidates():
        bucket = by_size.get(_estimate(sentence))
        if bucket is None or sentence in seen or len(bucket) >= _PER_SIZE:
            continue
        seen.add(sentence)
        bucket.append(sentence)
    bank = [sentence for size in _SIZES for sentence in by_size[size]]
    random.Random(_SEED).shuffle(bank)
    return bank
