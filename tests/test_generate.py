"""Generation invariants over many seeds, lengths and tasks: exact length, gold from the world and
stated literally in its evidence chapter, consistent worlds, determinism."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from longtasks.fit import LengthError
from longtasks.generate import build_sample_with_world, generate_samples
from longtasks.tasks import get_task, list_tasks
from longtasks.world import check_world
from tests.story_text import chapter_texts

TASKS = list_tasks()
common = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def built(tokenizer, task, length, seed, index=0, chat=False, **knobs):
    spec = get_task(task)
    return build_sample_with_world(spec, spec.make_knobs(knobs), length, seed, index, tokenizer, chat)


@common
@given(
    task=st.sampled_from(TASKS),
    length=st.integers(min_value=1500, max_value=24000),
    seed=st.integers(min_value=0, max_value=2**31),
    chat=st.booleans(),
)
def test_every_sample_has_exactly_the_requested_length(tokenizer, task, length, seed, chat):
    (sample,) = generate_samples(task, length, 1, seed=seed, tokenizer=tokenizer, chat=chat)
    text = tokenizer.chat_wrap(sample.prompt) if chat else sample.prompt
    assert sample.input_tokens == length
    assert tokenizer.count(text) == length


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("length", [1024, 131072])
def test_lengths_from_1k_to_128k(tokenizer, task, length):
    (sample,) = generate_samples(task, length, 1, tokenizer=tokenizer)
    assert sample.input_tokens == length == tokenizer.count(sample.prompt)


def test_one_million_tokens(tokenizer):
    (sample,) = generate_samples("story_multihop", 1 << 20, 1, tokenizer=tokenizer, chat=True)
    assert tokenizer.count(tokenizer.chat_wrap(sample.prompt)) == 1 << 20
    assert sample.num_chapters > 2000  # the seed capped at 2000 chapters


@common
@given(task=st.sampled_from(TASKS), length=st.integers(2000, 12000), seed=st.integers(0, 10**6))
def test_gold_comes_from_the_world_and_is_stated_in_its_chapter(tokenizer, task, length, seed):
    result = built(tokenizer, task, length, seed)
    sample, world = result.sample, result.world
    check_world(world)
    texts = chapter_texts(sample.prompt, [c.header for c in result.chapters])
    assert len(texts) == len(world.chapters) == sample.num_chapters
    # every fact of every chapter is stated literally in that chapter's text
    for chapter in result.chapters:
        for fact in chapter.facts:
            assert fact.text in texts[chapter.number]
            assert fact.value in fact.text
    for number, depth in zip(sample.evidence_chapters, sample.evidence_depths, strict=True):
        assert 1 <= number <= len(world.chapters)
        assert 0.0 <= depth <= 1.0
    _check_answer(sample, world, texts)


def _check_answer(sample, world, texts):
    chapters = world.chapters
    if sample.task == "story_retrieval":
        assert len(sample.answer) == sample.knobs["num_questions"]
        for value, number in zip(sample.answer, sample.evidence_chapters, strict=True):
            chapter = chapters[number - 1]
            assert value in {chapter.location, chapter.character, *chapter.purchases}
            if value in chapter.purchases:
                assert chapter.purchases == (value,)  # unique: the chapter has one purchase
            assert value in texts[number]
            if value == chapter.character:  # characters are unique: the name appears in no other chapter
                assert sum(value in text for text in texts.values()) == 1
    elif sample.task == "story_multihop":
        order = [item for item, _ in world.purchase_order()]
        hops = sample.knobs["hops"]
        asked = [item for item in order if f"the {item}?" in sample.question]
        assert len(asked) == 1
        assert order.index(asked[0]) - order.index(sample.answer) == hops
        assert sample.answer in texts[sample.evidence_chapters[0]]
    elif sample.task == "story_filtering":
        empty = [c.number for c in chapters if not c.purchases]
        assert sample.answer == empty and len(empty) == sample.knobs["num_empty"]
    elif sample.task == "story_inventory":
        assert set(sample.answer) == world.final_inventory()
        bought = {item for c in chapters for item in c.purchases}
        sold = {item for c in chapters for item in c.sales}
        assert set(sample.answer) == bought - sold
        for item, number in zip(sample.answer, sample.evidence_chapters, strict=True):
            assert item in texts[number]


def test_multihop_answers_are_not_always_in_the_neighbouring_chapter(tokenizer):
    gaps = []
    for seed in range(30):
        result = built(tokenizer, "story_multihop", 8000, seed)
        answer_chapter, item_chapter = result.sample.evidence_chapters
        gaps.append(item_chapter - answer_chapter)
    assert all(g >= 0 for g in gaps)
    assert any(g >= 2 for g in gaps) and any(g == 0 for g in gaps) and any(g == 1 for g in gaps)


@pytest.mark.parametrize("hops", [2, 3])
def test_multihop_generalises_to_more_hops(tokenizer, hops):
    result = built(tokenizer, "story_multihop", 8000, 5, hops=hops)
    order = [item for item, _ in result.world.purchase_order()]
    asked = [item for item in order if f"the {item}?" in result.sample.question]
    assert order.index(asked[0]) - order.index(result.sample.answer) == hops


def test_depth_control_places_evidence(tokenizer):
    shallow = built(tokenizer, "story_retrieval", 16000, 1, depth="0.05", num_questions=4)
    deep = built(tokenizer, "story_retrieval", 16000, 1, depth="0.95", num_questions=4)
    assert max(shallow.sample.evidence_depths) < 0.25
    assert min(deep.sample.evidence_depths) > 0.75
    stratified = built(tokenizer, "story_retrieval", 32000, 2, depth="stratified", num_questions=10)
    bins = {min(int(d * 5), 4) for d in stratified.sample.evidence_depths}
    assert bins == {0, 1, 2, 3, 4}


def test_determinism_across_index_ranges_and_workers(tokenizer):
    full = generate_samples("story_retrieval", 3000, 6, seed=3, tokenizer=tokenizer)
    tail = generate_samples("story_retrieval", 3000, 3, seed=3, tokenizer=tokenizer, start=3)
    parallel = generate_samples("story_retrieval", 3000, 6, seed=3, tokenizer=tokenizer, workers=2)
    assert [s.to_row() for s in full[3:]] == [s.to_row() for s in tail]
    assert [s.to_row() for s in full] == [s.to_row() for s in parallel]
    other_seed = generate_samples("story_retrieval", 3000, 1, seed=4, tokenizer=tokenizer)
    assert other_seed[0].prompt != full[0].prompt


def test_rows_round_trip(tokenizer):
    (sample,) = generate_samples("story_inventory", 3000, 1, tokenizer=tokenizer)
    row = sample.to_row()
    assert isinstance(row["answer"], str)
    assert type(sample).from_row(row) == sample


def test_too_small_length_is_a_clear_error(tokenizer):
    with pytest.raises(LengthError, match=r"length 300 is too small.*at least \d+"):
        generate_samples("story_retrieval", 300, 1, tokenizer=tokenizer)


@pytest.mark.parametrize(
    ("task", "knobs", "match"),
    [
        ("story_nope", {}, "unknown task 'story_nope'"),
        ("story_retrieval", {"bogus": 1}, r"unknown knob\(s\) \['bogus'\]"),
        ("story_retrieval", {"num_questions": "many"}, "num_questions='many'.*not a valid int"),
        ("story_retrieval", {"depth": "deep"}, "invalid depth 'deep'"),
        ("story_retrieval", {"kinds": "weather"}, "kinds='weather' is invalid"),
        ("story_multihop", {"hops": 0}, "hops=0 must be at least 1"),
        ("story_filtering", {"num_empty": 0}, "num_empty=0"),
        ("story_inventory", {"sale_probability": 2}, "sale_probability=2.0"),
    ],
)
def test_bad_knobs_fail_clearly(tokenizer, task, knobs, match):
    with pytest.raises(ValueError, match=match):
        generate_samples(task, 4096, 1, tokenizer=tokenizer, knobs=knobs)
