"""Retrieval answers are scored question by question against each question's own evidence depth."""

from __future__ import annotations

import json

from longtasks.scoring import score


def _row(sample_id: str, depths: list[float], gold: list[str]) -> dict:
    return {
        "id": sample_id,
        "task": "story_retrieval",
        "length": 4096,
        "answer_kind": "list",
        "answer": json.dumps(gold),
        "evidence_depths": depths,
    }


def test_question_depth_separates_early_from_late_questions():
    gold = ["alpha", "bravo", "charlie", "delta"]
    depths = [0.05, 0.1, 0.9, 0.95]  # mean 0.5: the sample-level depth bin hides the split
    rows = [_row(f"s{i}", depths, gold) for i in range(3)]
    # the model answers the two early questions right and the two late ones wrong
    predictions = [{"id": r["id"], "prediction": "<answer>alpha\nbravo\nwrong\nwrong</answer>"} for r in rows]
    report = score(predictions, rows)
    assert [g.depth_bin for g in report.summary.by_depth] == ["[0.4,0.6)"]
    by_question = {g.depth_bin: g for g in report.summary.by_question_depth}
    assert by_question["[0.0,0.2)"].score.mean == 1.0 and by_question["[0.0,0.2)"].n == 6
    assert by_question["[0.8,1.0]"].score.mean == 0.0 and by_question["[0.8,1.0]"].n == 6
    assert report.per_sample[0]["question_scores"] == [1.0, 1.0, 0.0, 0.0]


def test_unparseable_answer_scores_every_question_zero():
    rows = [_row("s0", [0.1, 0.9], ["alpha", "bravo"])]
    report = score([{"id": "s0", "prediction": "no idea"}], rows)
    assert report.per_sample[0]["question_scores"] == [0.0, 0.0]
    assert {g.score.mean for g in report.summary.by_question_depth} == {0.0}


def test_question_intervals_resample_whole_samples():
    """Questions of one prompt are correlated: a sample where the model got everything right or everything
    wrong must widen the interval as one unit, not as 16 independent draws."""
    from longtasks.scoring.aggregate import mean_ci

    scores = [1.0] * 16 + [0.0] * 16
    independent = mean_ci(scores)
    clustered = mean_ci(scores, clusters=["a"] * 16 + ["b"] * 16)
    assert independent.mean == clustered.mean == 0.5
    assert clustered.high - clustered.low > 2 * (independent.high - independent.low)
    assert (clustered.low, clustered.high) == (0.0, 1.0)


def test_question_scores_follow_the_numbers_the_model_gave():
    """The per-question scores use the positions the sample score uses: a numbered answer in another order,
    or with one question left out, is scored question by question by its numbers."""
    rows = [_row("s0", [0.1, 0.3, 0.6, 0.9], ["alpha", "bravo", "charlie", "delta"])]
    cases = {
        "4. delta\n3. charlie\n2. bravo\n1. alpha": [1.0, 1.0, 1.0, 1.0],
        "1. alpha\n3. charlie\n4. delta": [1.0, 0.0, 1.0, 1.0],
    }
    for answer, expected in cases.items():
        report = score([{"id": "s0", "prediction": f"<answer>{answer}</answer>"}], rows)
        assert report.per_sample[0]["question_scores"] == expected
        assert report.per_sample[0]["score"] == sum(expected) / 4
