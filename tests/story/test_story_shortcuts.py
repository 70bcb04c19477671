"""No task can be gamed by a trivial reader: from 16k tokens on, answering from the question alone,
listing the last k purchases, listing every chapter or the most named items scores at most 0.2, even
with k chosen on the samples themselves. (The first release: the last 10 purchases scored 0.42-0.45 on
inventory at 16k-32k.)"""

from __future__ import annotations

import pytest

from longtasks.families.story.audit import shortcuts
from longtasks.generation import build_sample_with_draft, generate_samples
from longtasks.registry import get_task

TRIVIAL = {
    "story_retrieval": [shortcuts.retrieval_question_only],
    "story_multihop": [shortcuts.multihop_question_only],
    "story_filtering": [shortcuts.filtering_every_chapter],
    "story_inventory": [shortcuts.inventory_question_only],
}
TRIVIAL_K = {"story_inventory": [shortcuts.inventory_last_purchases, shortcuts.inventory_most_named]}


def _rows(task: str, length: int, tokenizer) -> list[dict]:
    samples = generate_samples(task, length, 12, seed=3, tokenizer=tokenizer)
    return [
        {"prompt": s.prompt, "question": s.question, "answer": s.answer, "answer_kind": s.answer_kind}
        for s in samples
    ]


@pytest.mark.parametrize("task", sorted(TRIVIAL))
def test_trivial_baselines_score_at_most_a_fifth(tokenizer, task):
    rows = _rows(task, 16384, tokenizer)
    for reader in TRIVIAL[task]:
        assert shortcuts.mean_score(rows, reader) <= 0.2, reader.__name__
    for reader in TRIVIAL_K.get(task, []):
        score, k = shortcuts.best_k(rows, reader)
        assert score <= 0.2, (reader.__name__, k, score)


def test_multihop_answer_is_never_next_to_the_question_item(tokenizer):
    """By default the answer's purchase is in an earlier chapter than X's (the first release: 23-37 % of
    one-hop samples had both in one chapter, in adjacent "first ... second" sentences)."""
    spec = get_task("story_multihop")
    for index in range(20):
        result = build_sample_with_draft(spec, spec.make_knobs({}), 16384, 3, index, tokenizer, False)
        answer_chapter, item_chapter = result.sample.meta["evidence_chapters"]
        assert answer_chapter < item_chapter


def test_shortcut_readers_read_what_they_claim():
    """The readers parse a hand-made story as intended (so a low score is the shortcut's failure)."""
    prompt = (
        "It follows Ann Lee from place to place.\n<story>\nChapter 1\nAnn Lee arrived at the old mill of "
        "Ayton. She met Tom Bell. She bought a tiny tin key.\n\nChapter 2\nShe bought a plain oak box. "
        "She sold the tiny tin key.\n\nChapter 3\nThe plain oak box was still with her.\n</story>"
    )
    row = {
        "prompt": prompt,
        "question": "In chapter 1, where was Ann Lee?",
        "answer": ["x"],
        "answer_kind": "list",
    }
    assert shortcuts.purchases(prompt) == ("tiny tin key", "plain oak box")
    assert shortcuts.retrieval_first_name(row) == "the old mill of Ayton"
    assert shortcuts.inventory_last_purchases(row, 1) == "plain oak box"
    assert shortcuts.inventory_named_once(row) == "none"
    assert shortcuts.filtering_every_chapter(row) == "1, 2, 3"
    assert shortcuts.filtering_no_item_named(row) == "none"
