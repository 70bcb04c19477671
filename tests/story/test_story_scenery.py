"""The scenery corpus: nothing askable, no contradiction, and every pool agrees with its scene (a
river never "grows steeper", a morning never ends "at sunset"); interludes fit any scene."""

from __future__ import annotations

import random
import re
from collections import Counter
from functools import cache
from itertools import pairwise

import pytest

from longtasks.families.story.filler import SCENERY, Interludes, InterludeSource
from longtasks.families.story.world.entities import ADJECTIVES, ITEM_MATERIALS, ITEM_NOUNS, LOCATION_KINDS
from longtasks.families.story.world.scenery import PRONOUNS, SceneryCorpus, echoes, scenery_corpus
from tests.story.banned import banned_in
from tests.story.lexicon import TIME_WORDS, WEATHER_WORDS, WORD_SETTINGS, words_of

FORBIDDEN = re.compile(
    r"\b(buy\w*|bought|sell\w*|sold|sale|purchase\w*|acquir\w*|meet\w*|met|chapter\w*|shop\w*|coins?|money|"
    r"price|paid|pay\w*|trade\w*|merchant|first|second|third)\b",
    re.IGNORECASE,
)
KIND = re.compile(r"\b(" + "|".join(map(re.escape, LOCATION_KINDS)) + r")\b")


@cache
def corpus() -> SceneryCorpus:
    return scenery_corpus()


def every_sentence() -> list[str]:
    return [text[1:] for text in corpus().texts] + [text[1:] for text in corpus().interludes]


def test_scenery_states_nothing_a_question_can_ask() -> None:
    item_words, nouns = set(ADJECTIVES) | ITEM_MATERIALS, ITEM_NOUNS
    for sentence in every_sentence():
        assert sentence == sentence.strip() and sentence.endswith(".") and sentence[0].isupper(), sentence
        assert not re.search(r"\d", sentence), sentence
        assert not FORBIDDEN.search(sentence), sentence
        assert not KIND.search(sentence), sentence
        words = re.findall(r"[A-Za-z']+", sentence)
        assert all(w.islower() for w in words[1:]), sentence  # no names
        lower = [w.lower() for w in words]
        assert not any(a in item_words and b in nouns for a, b in pairwise(lower)), sentence  # no item


def test_no_sentence_repeats_a_word_or_contradicts_itself() -> None:
    for sentence in every_sentence():
        assert not echoes(sentence), sentence
        assert not banned_in(sentence), (sentence, banned_in(sentence))


def test_every_pool_agrees_with_its_scene() -> None:
    """Each pool holds only sentences whose time-of-day, weather and setting words fit its scene."""
    built = corpus()
    signs = {}  # sentence id -> (times, weathers, settings it allows or None)
    for i, text in enumerate(built.texts):
        words = words_of(text)
        times = frozenset(t for t, ws in TIME_WORDS.items() if ws & words)
        weathers = frozenset(k for k, ws in WEATHER_WORDS.items() if ws & words)
        allowed = [WORD_SETTINGS[w] for w in words if w in WORD_SETTINGS]
        signs[i] = (times, weathers, frozenset.intersection(*allowed) if allowed else None)
    clash = []
    for key in built.pool_keys():
        category, time, weather, where = (*key, "")[:4]
        setting = built.setting_of.get(where, where) if category.startswith(("place", "hero")) else None
        for i in built.pool(*key):
            times, weathers, settings = signs[i]
            wrong = times - {time} or weathers - {weather}
            if setting is not None and settings is not None and setting not in settings:
                wrong = wrong or settings
            if category in ("sky", "sky:in", "talk") and settings is not None:
                wrong = wrong or settings
            if wrong:
                clash.append((built.texts[i], key, wrong))
    assert not clash, clash[:5]


def test_interludes_fit_any_scene() -> None:
    scene_words = set().union(*TIME_WORDS.values(), *WEATHER_WORDS.values(), WORD_SETTINGS)
    for text in corpus().interludes:
        assert not words_of(text) & scene_words, text


def test_every_scene_has_enough_to_say() -> None:
    """Every place kind, time and weather it allows has many sentences to choose from, so a chapter never
    runs short of scenery nor repeats itself."""
    built = corpus()
    for kind, setting in built.setting_of.items():
        for time in built.kind_times.get(kind, built.times):
            for weather in built.weathers:
                assert len(built.pool(f"place:{setting}", time, weather, kind)) >= 150, (kind, time, weather)
                for pronoun in PRONOUNS:
                    assert len(built.pool(f"hero:{pronoun}", time, weather, setting)) >= 40
    for time in built.times:
        for weather in built.weathers:
            assert len(built.pool("sky", time, weather)) >= 100, (time, weather)
            assert len(built.pool("sky", time, weather, "", "single")) >= 8, (time, weather)
    assert len(built.pool("talk", "morning", "clear")) >= 200


def test_corpus_is_deterministic() -> None:
    again = SceneryCorpus()
    assert again.texts == corpus().texts and again.interludes == corpus().interludes


def test_interludes_cover_every_short_length(tokenizer) -> None:
    """The fitter makes each chapter's length exact with interludes: every count from the shortest up to
    15 tokens needs many of them (longer interludes are left out: they would come back too often)."""
    counts = Counter(tokenizer.count_many([" " + s for s in SCENERY.sentences()]))
    low = min(counts)
    thin = {n: counts[n] for n in range(low, 16) if counts[n] < 20}
    assert low <= 4 and not thin, thin


def test_interlude_source_splits_exactly_and_cycles(tokenizer) -> None:
    source = Interludes().source(tokenizer, 0, random.Random(0))
    assert isinstance(source, InterludeSource)
    rng = random.Random(1)
    for total in [*range(source.min_count, 200), 1000, 5000]:
        parts = source.split(total, rng)
        assert parts is not None and sum(parts) == total, total
    assert source.split(source.min_count - 1, rng) is None
    count = next(c for c in range(5, 30) if source.has(c))
    drawn = [source.draw(count, rng) for _ in range(15)]
    assert len(set(drawn)) == len(drawn)  # no sentence of a length comes back before all others did


@pytest.mark.parametrize("bad", [{"times": ["noon"]}, {"drop_kind": "lighthouse"}])
def test_a_broken_scenery_file_fails_loudly(bad) -> None:
    from longtasks.prompt import yaml_templates

    data = dict(yaml_templates("story", "scenery.yaml"))
    if "times" in bad:
        data["kind_times"] = {"night market": bad["times"]}
        match = "unknown time"
    else:
        data["settings"] = {k: [x for x in v if x != bad["drop_kind"]] for k, v in data["settings"].items()}
        match = "without a setting"
    with pytest.raises(ValueError, match=match):
        SceneryCorpus(data)
