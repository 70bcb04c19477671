"""Rendering facts and mentions: every fact is stated literally and alone; a mention names one person,
place or item in a role that answers no question; neither says a time of day or a weather."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from longtasks.families.story.world import StoryRenderer, World, WorldConfig, simulate_world
from longtasks.families.story.world.entities import ADJECTIVES, ITEM_MATERIALS, ITEM_NOUNS, LOCATION_KINDS
from longtasks.resources import templates_dir
from tests.story.lexicon import TIME_WORDS, WEATHER_WORDS, words_of

SETTINGS = settings(max_examples=30, deadline=None)
BUY = re.compile(r"\b(buy|buying|bought|purchase|purchased|acquire|acquired)\b", re.IGNORECASE)
SELL = re.compile(r"\b(sell|selling|sold|sale)\b", re.IGNORECASE)
SECOND = re.compile(r"\b(later|after|afterwards|then|next|second)\b", re.IGNORECASE)
FIRST = re.compile(r"\b(first|begin|start|started|before anything)\b", re.IGNORECASE)
PRONOUNS = {"she", "he", "her", "him", "his"}


@cache
def renderer() -> StoryRenderer:
    return StoryRenderer()


def entities(world: World) -> set[str]:
    """Everything a question can ask about, except the protagonist."""
    found = {c.location for c in world.chapters} | {c.character for c in world.chapters}
    return found | {item for item, _ in world.purchase_order()}


def mentions(text: str, names: set[str]) -> set[str]:
    pattern = re.compile(
        r"(?<![\w])(?:" + "|".join(map(re.escape, sorted(names, key=len, reverse=True))) + r")(?![\w])"
    )
    return set(pattern.findall(text))


def test_every_fact_kind_has_many_paraphrases() -> None:
    for kind in ("location", "character", "purchase_single", "purchase_first", "purchase_second", "sale"):
        assert renderer().paraphrases(kind) >= 8, kind


@SETTINGS
@given(num_chapters=st.integers(1, 60), seed=st.integers(0, 2**32), unique=st.booleans())
def test_facts_state_their_value_and_nothing_else(num_chapters: int, seed: int, unique: bool) -> None:
    world = simulate_world(num_chapters, seed, WorldConfig(unique_locations=unique))
    names = entities(world)
    first_name = world.protagonist.split(" ")[0]
    rng = random.Random(seed)
    for chapter in world.chapters:
        rendered = renderer().render_chapter(world, chapter, rng)
        assert rendered.number == chapter.number
        assert re.search(rf"\b{chapter.number}\b", rendered.header)
        expected = [("location", chapter.location), ("character", chapter.character)]
        expected += [("purchase", item) for item in chapter.purchases]
        expected += [("sale", item) for item in chapter.sales]
        assert [(f.kind, f.value) for f in rendered.facts] == expected
        for fact in rendered.facts:
            text = fact.text
            assert text == text.strip() and text[-1] in ".!?" and text[0].isupper(), text
            assert "\n" not in text
            assert fact.value in text
            assert mentions(text, names) == {fact.value}, text
            words = set(re.findall(r"[A-Za-z]+", text))
            assert first_name in words or PRONOUNS & {w.lower() for w in words}, text
            if fact.kind == "purchase":
                assert BUY.search(text) and not SELL.search(text), text
                article = "an" if fact.value[0] in "aeiou" else "a"
                assert f" {article} {fact.value}" in text, text
            elif fact.kind == "sale":
                assert SELL.search(text) and not BUY.search(text), text
            else:
                assert not BUY.search(text) and not SELL.search(text), text
        purchases = [f.text for f in rendered.facts if f.kind == "purchase"]
        if len(purchases) == 2:
            assert FIRST.search(purchases[0]) and not SECOND.search(purchases[0]), purchases[0]
            assert SECOND.search(purchases[1]), purchases[1]


def test_template_wording_names_no_item_or_place_words() -> None:
    """Outside the value itself, a fact sentence uses no item word or place kind (so "a pot of tea"
    is fine, "a brass pot" is not): nothing in the wording can pass for an answer."""
    world = simulate_world(400, 21)
    item_words = ITEM_NOUNS | ITEM_MATERIALS | set(ADJECTIVES)
    skeletons: Counter[str] = Counter()
    rng = random.Random(0)
    for chapter in world.chapters:
        for fact in renderer().render_chapter(world, chapter, rng).facts:
            skeleton = fact.text.replace(fact.value, "<value>").replace(world.protagonist, "<hero>")
            skeletons[fact.kind] += 1
            words = {w.lower() for w in re.findall(r"[A-Za-z]+", skeleton)}
            assert not words & item_words, fact.text
            assert not any(kind in skeleton.lower() for kind in LOCATION_KINDS), fact.text
    assert min(skeletons.values()) >= 50


def test_rendering_is_deterministic_given_the_rng() -> None:
    world = simulate_world(40, 3)
    first = [renderer().render_chapter(world, c, random.Random(c.number)) for c in world.chapters]
    again = [StoryRenderer().render_chapter(world, c, random.Random(c.number)) for c in world.chapters]
    assert first == again
    texts = {f.text for ch in first for f in ch.facts}
    other = {
        f.text for c in world.chapters for f in renderer().render_chapter(world, c, random.Random(9)).facts
    }
    assert texts != other  # the rng really picks the paraphrases


_DIGEST_SCRIPT = """
import hashlib, random
from longtasks.families.story.world import StoryRenderer, WorldConfig, simulate_world
from longtasks.families.story.world.scenery import scenery_corpus
world = simulate_world(30, 4, WorldConfig(empty_chapters=frozenset({2, 5, 9}), unique_locations=True))
rng = random.Random(4)
text = [repr(world)] + [repr(StoryRenderer().render_chapter(world, c, rng)) for c in world.chapters]
corpus = scenery_corpus()
pools = [repr([corpus.pool(*key) for key in corpus.pool_keys()[::25]])]
print(hashlib.sha256("\\n".join(text + corpus.texts + corpus.interludes + pools).encode()).hexdigest())
"""


def test_world_render_and_scenery_do_not_depend_on_hash_seed() -> None:
    """Set iteration order changes with PYTHONHASHSEED; nothing we generate may depend on it."""
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-c", _DIGEST_SCRIPT], env=env, capture_output=True, text=True, check=True
        )
        digests.add(result.stdout.strip())
    assert len(digests) == 1


def test_a_million_token_story_simulates_and_renders_fast() -> None:
    renderer()  # templates compile once, outside the timed part
    start = time.perf_counter()
    world = simulate_world(3000, 7)
    rng = random.Random(7)
    chapters = [renderer().render_chapter(world, c, rng) for c in world.chapters]
    elapsed = time.perf_counter() - start
    assert len(chapters) == 3000
    assert elapsed < 2.0, f"3000 chapters took {elapsed:.2f} s"


def _story_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "story"
    shutil.copytree(templates_dir() / "story", folder)
    return folder


@pytest.mark.parametrize(
    ("file", "line", "message"),
    [
        ("location.j2", "{{ Who }} went somewhere.", "exactly once"),
        ("location.j2", "Someone arrived at {{ location }}.", "protagonist"),
        ("sale.j2", "{{ item }} was sold by {{ whom }}.", "must not start"),
        ("character.j2", "{{ Who }} met {{ character }}", "must end"),
        ("character.j2", "{{ Who }} met {{ character }} and {{ stranger }}.", "undefined"),
        ("mention_place.j2", "{{ place }} lay far away.", "must not start"),
        ("mention_item.j2", "{{ Who }} kept the {{ item }} and the {{ item }}.", "exactly once"),
        ("mention_person.j2", "Nobody knew {other}.", "exactly once"),
    ],
)
def test_broken_templates_fail_loudly(tmp_path: Path, file: str, line: str, message: str) -> None:
    folder = _story_copy(tmp_path)
    path = folder / file
    path.write_text(path.read_text() + line + "\n")
    with pytest.raises(Exception, match=message):
        StoryRenderer(folder)


def test_too_few_paraphrases_fail_loudly(tmp_path: Path) -> None:
    folder = _story_copy(tmp_path)
    (folder / "sale.j2").write_text("{{ Who }} sold the {{ item }}.\n")
    with pytest.raises(ValueError, match="at least 8"):
        StoryRenderer(folder)


# --- mentions ------------------------------------------------------------------------------------

MEETING = re.compile(r"\b(met|meet|meeting|greeted|introduced|spoke with|talked with|conversation)\b", re.I)
BEING_AT = re.compile(r"\b(arrived|reached|stayed|staying|stood at|was at|was now|came to|spent)\b", re.I)


@SETTINGS
@given(seed=st.integers(0, 2**32))
def test_mentions_name_their_value_in_a_role_that_answers_no_question(seed: int) -> None:
    world = simulate_world(40, seed)
    names = entities(world)
    rng = random.Random(seed)
    for chapter in world.chapters[:10]:
        for kind, value in (("person", chapter.character), ("place", chapter.location)):
            text = renderer().render_mention(world, kind, value, rng)
            assert mentions(text, names) == {value}, text
            assert not BUY.search(text) and not SELL.search(text), text
            assert not MEETING.search(text) and not BEING_AT.search(text), text
        item = world.purchase_order()[0][0]
        text = renderer().render_mention(world, "item", item, rng)
        assert mentions(text, names) == {item} and f"the {item}" in text.lower(), text
        assert not BUY.search(text) and not SELL.search(text), text
        assert not re.search(r"\b(got|gave|given|lost|left)\b", text), text  # ownership never changes


def test_mentions_never_repeat_an_earlier_sentence_when_told_so() -> None:
    world = simulate_world(5, 0)
    seen: set[str] = set()
    said = [
        renderer().render_mention(world, "place", world.chapters[0].location, random.Random(i), seen)
        for i in range(8)
    ]
    assert len(set(said)) == len(said)


def test_facts_and_mentions_say_no_time_of_day_or_weather() -> None:
    """The chapter's scenery sets the time of day and the weather, so no other sentence may."""
    world = simulate_world(200, 3)
    rng = random.Random(0)
    told = [f.text for c in world.chapters for f in renderer().render_chapter(world, c, rng).facts]
    told += [
        renderer().render_mention(world, k, v, rng)
        for k, v in (("person", "Tom Baker"), ("place", world.chapters[0].location), ("item", "tiny tin key"))
        for _ in range(40)
    ]
    names = entities(world) | {world.protagonist, world.protagonist_first_name, "Tom Baker", "tiny tin key"}
    names = sorted(names, key=len, reverse=True)
    for text in told:
        for name in names:  # people's and towns' names may hold such words ("Shane Moon")
            text = text.replace(name, "")
        found = words_of(text) & (set().union(*TIME_WORDS.values()) | set().union(*WEATHER_WORDS.values()))
        assert not found, (text, found)
