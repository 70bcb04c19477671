"""Every question is answered from the text alone, uniquely, over many seeds and every knob, with
confusers (people, places and items named in roles that answer no question) at any rate."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from longtasks.generation import build_sample_with_draft
from longtasks.registry import get_task
from tests.story.reader import answer, read_story

common = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

KNOBS = {
    "story_retrieval": st.fixed_dictionaries(
        {"num_questions": st.integers(1, 12), "depth": st.sampled_from(["uniform", "stratified", "0.1,0.9"])}
    ),
    "story_multihop": st.fixed_dictionaries({"hops": st.integers(1, 3), "min_gap": st.integers(0, 2)}),
    "story_filtering": st.fixed_dictionaries({"num_empty": st.integers(1, 4)}),
    "story_inventory": st.fixed_dictionaries(
        {"sale_probability": st.floats(0.0, 1.0), "max_owned": st.integers(0, 12)}
    ),
}


@common
@given(
    data=st.data(),
    task=st.sampled_from(sorted(KNOBS)),
    length=st.integers(2500, 12000),
    seed=st.integers(0, 10**6),
    confusers=st.sampled_from([0.0, 1.0, 3.0, 6.0, 10.0]),
    chat=st.booleans(),
)
def test_an_independent_reader_answers_every_question(tokenizer, data, task, length, seed, confusers, chat):
    knobs = {**data.draw(KNOBS[task]), "confusers": confusers}
    spec = get_task(task)
    result = build_sample_with_draft(spec, spec.make_knobs(knobs), length, seed, 0, tokenizer, chat)
    sample = result.sample
    got = answer(sample.prompt, sample.question)
    assert got == sample.answer, (task, knobs, got, sample.answer)


def test_confusers_put_names_outside_the_facts(tokenizer):
    """With confusers, the fact sentences are no longer the only ones naming people, places and items:
    most chapters name someone or something the reader must not take for an answer."""
    spec = get_task("story_retrieval")
    result = build_sample_with_draft(spec, spec.make_knobs({}), 16000, 3, 0, tokenizer, False)
    world = result.draft.truth.world
    _, chapters = read_story(result.sample.prompt)
    names = {c.character for c in world.chapters} | {c.location for c in world.chapters}
    names |= {item for item, _ in world.purchase_order()}
    story = result.sample.prompt
    facts = {f.text for c in result.draft.truth.chapters for f in c.facts}
    outside = [name for name in names if story.count(name) > sum(name in f for f in facts)]
    assert len(outside) > len(names) / 3
    assert len(chapters) == len(world.chapters)
