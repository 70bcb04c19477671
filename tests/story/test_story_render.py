"""Rendering facts and filler: every fact is stated literally and alone; filler states nothing askable."""

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
from faker.providers.person.en_US import Provider as FakerPerson
from hypothesis import given, settings
from hypothesis import strategies as st

from longtasks.families.story.world import StoryRenderer, World, WorldConfig, filler_sentences, simulate_world
from longtasks.families.story.world.entities import ADJECTIVES, ITEM_MATERIALS, ITEM_NOUNS, LOCATION_KINDS
from longtasks.families.story.world.filler import _candidates
from longtasks.resources import templates_dir
from longtasks.tokenizer import load_tokenizer

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
from longtasks.families.story.world import StoryRenderer, WorldConfig, filler_sentences, simulate_world
world = simulate_world(50, 4, WorldConfig(empty_chapters=frozenset({2, 5, 9}), unique_locations=True))
rng = random.Random(4)
text = [repr(world)] + [repr(StoryRenderer().render_chapter(world, c, rng)) for c in world.chapters]
print(hashlib.sha256("\\n".join(text + filler_sentences()).encode()).hexdigest())
"""


def test_world_render_and_filler_do_not_depend_on_hash_seed() -> None:
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


# --- filler -------------------------------------------------------------------------------------

FORBIDDEN = re.compile(
    r"\b(buy\w*|bought|sell\w*|sold|sale|purchase\w*|acquir\w*|meet\w*|met|chapter\w*|market|shop\w*|"
    r"coins?|money|price|paid|pay\w*|trade\w*|merchant|he|she|him|her|his|they|first|second|one|two|three)\b",
    re.IGNORECASE,
)


def test_filler_is_large_distinct_and_deterministic() -> None:
    bank = filler_sentences()
    assert len(bank) >= 3000
    assert len(set(bank)) == len(bank)
    assert filler_sentences() is bank  # cached
    assert filler_sentences.__wrapped__() == bank  # rebuilt from scratch: same order
    assert _candidates() == _candidates()


def test_filler_states_no_askable_fact() -> None:
    names = set(FakerPerson.first_names) | set(FakerPerson.last_names)
    kinds = [re.compile(rf"\b{re.escape(kind)}\b") for kind in LOCATION_KINDS]
    for sentence in filler_sentences():
        assert sentence == sentence.strip() and sentence.endswith(".") and sentence[0].isupper(), sentence
        assert not re.search(r"\d", sentence), sentence
        assert not FORBIDDEN.search(sentence), sentence
        words = re.findall(r"[A-Za-z']+", sentence)
        assert words[0] not in names, sentence
        assert all(w.islower() for w in words[1:]), sentence  # no proper names anywhere
        assert not ITEM_NOUNS & {w.lower() for w in words}, sentence
        assert not any(k.search(sentence) for k in kinds), sentence


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_filler_contains_no_entity_of_a_world(seed: int) -> None:
    world = simulate_world(400, seed, WorldConfig(unique_locations=True))
    text = "\n".join(filler_sentences())
    names = entities(world) | {world.protagonist, world.protagonist.split(" ")[0]}
    assert not mentions(text, names)


def test_filler_covers_every_token_length_from_4_to_40() -> None:
    counts = Counter(load_tokenizer().count_many(filler_sentences()))
    thin = {n: counts[n] for n in range(4, 41) if counts[n] < 20}
    assert not thin, f"token lengths with fewer than 20 filler sentences: {thin}"
