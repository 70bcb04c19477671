"""The text around the facts: it agrees with each chapter's scene, never repeats a sentence inside a
chapter, rarely repeats one in a prompt, and holds none of the banned collocations."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from longtasks.families.story.audit.text import chapters_of, repeats, sentences_of
from longtasks.generation import build_sample_with_draft, generate_samples
from longtasks.registry import get_task, list_tasks
from tests.story.banned import banned_in
from tests.story.lexicon import TIME_WORDS, WEATHER_WORDS, WORD_SETTINGS, words_of

TASKS = list_tasks("story")
common = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _names(world) -> list[str]:
    names = {c.location for c in world.chapters} | {c.character for c in world.chapters}
    names |= {item for item, _ in world.purchase_order()} | {world.protagonist, world.protagonist_first_name}
    return sorted(names, key=len, reverse=True)


@common
@given(
    task=st.sampled_from(TASKS),
    length=st.integers(2000, 20000),
    seed=st.integers(0, 10**6),
    confusers=st.sampled_from([0.0, 3.0, 8.0]),
)
def test_chapters_agree_with_their_scene_and_never_repeat(tokenizer, task, length, seed, confusers):
    spec = get_task(task)
    result = build_sample_with_draft(
        spec, spec.make_knobs({"confusers": confusers}), length, seed, 0, tokenizer, False
    )
    truth = result.draft.truth
    names = _names(truth.world)
    for text, scene in zip(chapters_of(result.sample.prompt), truth.scenes, strict=True):
        sentences = sentences_of(text)
        assert len(sentences) == len(set(sentences)), [s for s in sentences if sentences.count(s) > 1]
        for sentence in sentences:
            assert not banned_in(sentence), (sentence, banned_in(sentence))
        for name in names:  # names of people and towns may hold any word ("Shane Moon")
            text = text.replace(name, "")
        words = words_of(text)
        wrong = {w for t, ws in TIME_WORDS.items() if t != scene.time for w in ws & words}
        wrong |= {w for k, ws in WEATHER_WORDS.items() if k != scene.weather for w in ws & words}
        wrong |= {w for w in words if w in WORD_SETTINGS and scene.setting not in WORD_SETTINGS[w]}
        assert not wrong, (scene, wrong, text)


@pytest.mark.parametrize(("length", "samples"), [(4096, 3), (16384, 3), (131072, 2), (262144, 1)])
def test_prompts_rarely_repeat_a_sentence(tokenizer, length, samples):
    """Repeated sentences are at most 2 % of a prompt's story (the first release: about 7.6 % at 4k-16k,
    25 % at 128k), up to 256k tokens (where a story uses about as many interludes as there are)."""
    for task in TASKS:
        for sample in generate_samples(task, length, samples, seed=5, tokenizer=tokenizer):
            measured = repeats(sample.prompt)
            assert measured.repeated_share <= 0.02, (task, measured)
            assert measured.within_chapters == 0, (task, measured)
