"""QA family truths on the fixtures: exact length, the asked document present once and numbered as the
question says, gold answers equal to the source's, distractors that never answer the question, the
paper's filters, and the knobs."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qa_helpers import (
    SQUAD_FILE,
    asked_number,
    documents,
    quality_truth,
    read_jsonl,
    squad_truth,
    toefl_truth,
)

from longtasks.generation import generate_samples
from longtasks.registry import get_task, list_tasks
from longtasks.scoring import format_answer, score_prediction
from longtasks.scoring.token_f1 import normalize_f1

QA = list_tasks("qa")
many = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def plain(text: str) -> str:
    """Whitespace-normalised text without HTML tags (an independent reading of the stored article)."""
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())


@many
@given(
    task=st.sampled_from(QA),
    length=st.integers(min_value=1024, max_value=40000),
    seed=st.integers(min_value=0, max_value=2**31),
    chat=st.booleans(),
)
def test_exact_length(tokenizer, task, length, seed, chat):
    (sample,) = generate_samples(task, length, 1, seed=seed, tokenizer=tokenizer, chat=chat)
    text = tokenizer.chat_wrap(sample.prompt) if chat else sample.prompt
    assert sample.input_tokens == length == tokenizer.count(text)


@pytest.mark.parametrize("task", QA)
def test_the_asked_document_is_present_once_numbered_as_the_question_says(tokenizer, task):
    truth = {"qa_squad": squad_truth, "qa_quality": quality_truth, "qa_toefl": toefl_truth}[task]()
    for sample in generate_samples(task, 6000, 12, seed=1, tokenizer=tokenizer):
        docs = documents(sample.prompt)
        assert (
            [n for n, _ in docs]
            == list(range(1, len(docs) + 1))
            == list(range(1, sample.meta["num_documents"] + 1))
        )
        number = asked_number(sample.prompt)
        assert number == sample.meta["document"]
        if task == "qa_toefl":
            question = sample.question.split("\n", 1)[1]
            source_text, gold = truth[question]
            assert sample.answer == [gold]
        else:
            (qid,) = sample.meta["question_ids"]
            source_text, gold = truth[qid]
            assert sample.answer == ([gold] if task == "qa_quality" else [list(dict.fromkeys(gold))])
        texts = [plain(text) for _, text in docs]
        assert texts[number - 1] == plain(source_text)
        assert texts.count(plain(source_text)) == 1  # never repeated, never cut
        cut = sample.meta["cut_document"]
        assert cut != number and (cut == 0 or plain(source_text) != texts[cut - 1])


def test_squad_distractors_never_state_the_answer(tokenizer):
    for sample in generate_samples("qa_squad", 12000, 10, seed=2, tokenizer=tokenizer):
        answers = {f" {normalize_f1(a)} " for a in sample.answer[0]}
        for number, text in documents(sample.prompt):
            if number != sample.meta["document"]:
                assert not any(a in f" {normalize_f1(text)} " for a in answers)


def test_the_papers_filters(tokenizer):
    """Unanswerable SQuAD questions are never asked; duplicate (question, paragraph) pairs count once."""
    rows = read_jsonl(SQUAD_FILE)
    unanswerable = {r["id"] for r in rows if not r["answers"]["text"]}
    expected = {(r["question"].lower(), r["context"]) for r in rows if r["answers"]["text"]}
    assert len(expected) < len(rows) - len(unanswerable)  # the fixture holds duplicates
    task = get_task("qa_squad")
    _, pool = task.load(task.make_knobs())
    assert sum(len(d.questions) for d in pool.documents) == len(expected)
    asked = {
        qid
        for seed in range(3)
        for s in generate_samples("qa_squad", 1500, 20, seed=seed, tokenizer=tokenizer)
        for qid in s.meta["question_ids"]
    }
    assert asked and not asked & unanswerable


def test_the_single_document_limit_drops_long_articles_everywhere(tokenizer):
    long_article = plain(next(a for a, _ in quality_truth().values() if "(27)" in a))
    seen_long = False
    for limit, samples in [
        (
            1500,
            generate_samples(
                "qa_quality", 20000, 6, tokenizer=tokenizer, knobs={"document_prompt_limit": 1500}
            ),
        ),
        (None, generate_samples("qa_quality", 20000, 6, tokenizer=tokenizer)),
    ]:
        for sample in samples:
            present = any(plain(text) == long_article for _, text in documents(sample.prompt))
            if limit is not None:
                assert not present and not any(q.startswith("52005_") for q in sample.meta["question_ids"])
            seen_long = seen_long or present
    assert seen_long  # at the paper's limit it is used


def test_depth_places_the_asked_document(tokenizer):
    first = generate_samples("qa_squad", 8000, 3, tokenizer=tokenizer, knobs={"depth": "0"})
    last = generate_samples("qa_squad", 8000, 3, tokenizer=tokenizer, knobs={"depth": "1"})
    assert all(s.meta["document"] == 1 and s.evidence_depths == [0.0] for s in first)
    assert all(s.meta["document"] == s.meta["num_documents"] and s.evidence_depths[0] > 0.9 for s in last)
    listed = generate_samples("qa_toefl", 8000, 12, tokenizer=tokenizer, knobs={"depth": "0.25,0.75"})
    assert {round(s.evidence_depths[0] * 4) / 4 for s in listed} <= {0.25, 0.75}


def test_several_questions_about_one_document(tokenizer):
    truth = squad_truth()
    for sample in generate_samples("qa_squad", 5000, 4, tokenizer=tokenizer, knobs={"num_questions": 2}):
        first, second = sample.meta["question_ids"]
        assert truth[first][0] == truth[second][0] and len(sample.answer) == 2
        assert sample.question.startswith(f"Questions about document {sample.meta['document']}:\n1. ")
        assert (
            score_prediction("token_f1", format_answer("token_f1", sample.answer), sample.answer)["score"]
            == 1
        )
    with pytest.raises(ValueError, match=r"no document has 9 questions .* use num_questions <= \d"):
        generate_samples("qa_quality", 5000, 1, tokenizer=tokenizer, knobs={"num_questions": 9})


def test_gold_answers_score_one_and_an_unrelated_answer_does_not(tokenizer):
    for task in QA:
        for sample in generate_samples(task, 3000, 4, seed=5, tokenizer=tokenizer):
            gold = format_answer(sample.answer_kind, sample.answer)
            assert score_prediction(sample.answer_kind, gold, sample.answer)["score"] == 1.0
            assert score_prediction(sample.answer_kind, "<answer>Z</answer>", sample.answer)["score"] == 0.0
