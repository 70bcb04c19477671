"""The exact-length fitter's building blocks."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from longtasks.depth import chapter_at_depth, target_depths
from longtasks.families.story.task import SCENERY
from longtasks.filler_stream import StreamFiller


@settings(max_examples=300, deadline=None)
@given(total=st.integers(min_value=4, max_value=20000), seed=st.integers(0, 2**32))
def test_filler_split_is_exact_and_uses_real_lengths(tokenizer, total, seed):
    bank = SCENERY.source(tokenizer, 0, random.Random(0))
    parts = bank.split(total, random.Random(seed))
    assert parts is not None and sum(parts) == total
    assert all(p in bank.by_count for p in parts)


def test_filler_split_reports_impossible_totals(tokenizer):
    bank = SCENERY.source(tokenizer, 0, random.Random(0))
    assert bank.split(bank.min_count - 1, random.Random(0)) is None


def test_filler_sentences_have_the_counted_length(tokenizer):
    bank = SCENERY.source(tokenizer, 0, random.Random(0))
    for count, sentences in bank.by_count.items():
        for sentence in sentences[:5]:
            assert tokenizer.count(sentence) == count


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 5000), depth=st.floats(0, 1))
def test_chapter_at_depth_is_in_range(n, depth):
    chapter = chapter_at_depth(depth, n)
    assert 1 <= chapter <= n
    assert (chapter - 1) / n <= depth <= chapter / n or chapter == n


def test_stratified_depths_cover_every_stratum():
    depths = target_depths("stratified", 8, random.Random(0))
    assert sorted(int(d * 8) for d in depths) == list(range(8))
    assert target_depths("0.2,0.8", 3, random.Random(0)) == [0.2, 0.8, 0.2]


@settings(max_examples=200, deadline=None)
@given(total=st.integers(600, 20000), seed=st.integers(0, 2**32), spread=st.integers(3, 12))
def test_stream_split_is_exact_and_never_draws_a_sentence_twice(total, seed, spread):
    """A per-sample pool like RULER's distractors (token counts spread around a mean, 48 spare
    sentences) is split exactly, and every drawn sentence is a different one. (Below ~10 sentences some
    totals are no sum of the counts at all: 200 is none of 3 x 50-60 or 4 x 52-60.)"""
    rng = random.Random(seed)
    size = total // 40 + 48
    counts = [min(80, max(30, round(rng.gauss(55, spread)))) for _ in range(size)]
    texts = [f" sentence {i}." for i in range(size)]
    stream = StreamFiller(texts, counts)
    parts = stream.split(total, random.Random(seed))
    assert parts is not None and sum(parts) == total
    drawn = [stream.draw(c, rng) for c in parts]
    assert len(set(drawn)) == len(drawn)
    assert all(counts[texts.index(t)] == c for t, c in zip(drawn, parts, strict=True))
