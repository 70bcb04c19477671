"""The QA answer kinds against hand-worked examples: the seed paper's SQuAD token F1 (set overlap, its
word list, two decimals, best alternative) and exact option-letter sets (multi-letter answers)."""

from __future__ import annotations

import pytest

from longtasks.scoring import format_answer, score_prediction
from longtasks.scoring.choices import letter_set
from longtasks.scoring.metrics import METRIC_KEYS
from longtasks.scoring.token_f1 import f1, normalize_f1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The Denver Broncos!", "denver broncos"),
        ("Saint-Denis", "saintdenis"),  # punctuation goes without leaving a space (the paper's rule)
        ("about 19,575 people", "19575 people"),
        ("to the north and or", "north"),  # the paper also drops and, or, about, to
        ("“Quoted” — dash", "quoted dash"),  # Unicode punctuation too
        ("ＦＵＬＬ width", "full width"),
    ],
)
def test_normalisation(raw, expected):
    assert normalize_f1(raw) == expected


def test_f1_hand_worked():
    # prediction {denver}, gold {denver, broncos}: P = 1, R = 1/2, F1 = 2/3 -> 0.67
    assert f1("Denver", "Denver Broncos") == 0.67
    # prediction {1879, river}, gold {1879}: P = 1/2, R = 1 -> 0.67; "in" is not a dropped word
    assert f1("1879 river", "1879") == 0.67
    assert f1("1879 river", "in 1879") == 0.5
    # sets, not counts: a repeated word does not change the score
    assert f1("Broncos Broncos Denver", "Denver Broncos") == 1.0
    # three of four words: P = 3/3, R = 3/4 -> 0.857 -> 0.86
    assert f1("Ines Merrow warehouse", "Ines Merrow built warehouse") == 0.86
    assert f1("the", "Denver") == 0.0  # empty after normalisation
    assert f1("Paris", "London") == 0.0


def test_best_gold_alternative_counts():
    gold = [["Denver Broncos", "Broncos"]]
    assert score_prediction("token_f1", "<answer>Broncos</answer>", gold)["score"] == 1.0
    result = score_prediction("token_f1", "<answer>the Denver team</answer>", gold)
    assert result == {"score": 0.5, "exact": 0.0, "parsed": 1.0}  # {denver, team} vs {denver, broncos}


def test_several_questions_one_line_each_and_extra_lines_cost():
    gold = [["1879"], ["Ines Merrow", "Merrow"]]
    assert score_prediction("token_f1", "<answer>1. 1879\n2. Merrow</answer>", gold)["score"] == 1.0
    half = score_prediction("token_f1", "<answer>1879\nsomeone else</answer>", gold)
    assert half == {"score": 0.5, "exact": 0.0, "parsed": 1.0}
    extra = score_prediction("token_f1", "<answer>1879\nMerrow\nand more</answer>", gold)
    assert extra["score"] == pytest.approx(2 / 3) and extra["exact"] == 0.0
    # With one question a multi-line answer is one answer (whitespace collapsed).
    assert score_prediction("token_f1", "<answer>Ines\nMerrow</answer>", [["Ines Merrow"]])["score"] == 1.0


@pytest.mark.parametrize("kind", ["token_f1", "choices"])
@pytest.mark.parametrize(
    "output",
    [
        "",
        "Merrow",
        "<answer></answer>",
        "<answer>  </answer>",
        "<answer>short answer copied from the document</answer>",
    ],
)
def test_unparseable_scores_zero_on_every_metric(kind, output):
    gold = [["Merrow"]] if kind == "token_f1" else ["B"]
    result = score_prediction(kind, output, gold)
    assert set(result) == set(METRIC_KEYS[kind]) and all(v == 0.0 for v in result.values())


@pytest.mark.parametrize(
    ("text", "letters"),
    [
        ("B", "B"), ("b", "B"), ("(B)", "B"), ("B.", "B"), ("BD", "BD"), ("DB", "BD"), ("B, D", "BD"),
        ("B and D", "BD"), ("B/D", "BD"), ("Answer: B", "B"), ("Options: A C", "AC"), ("1. C", "C"),
    ],
)  # fmt: skip
def test_letter_sets_read_strictly(text, letters):
    assert letter_set(text) == frozenset(letters)


@pytest.mark.parametrize("text", ["B. to report a missing journal", "I think B", "None", "Both", "42", "be"])
def test_anything_but_letters_is_unparsed(text):
    assert letter_set(text) is None


def test_multi_letter_answers_need_the_exact_set():
    assert score_prediction("choices", "<answer>DB</answer>", ["BD"])["score"] == 1.0
    assert score_prediction("choices", "<answer>B</answer>", ["BD"])["score"] == 0.0
    assert score_prediction("choices", "<answer>BCD</answer>", ["BD"])["score"] == 0.0
    # The paper's scorer read "Answer: B" as "AB" (every A-D capital kept); here it is B.
    assert score_prediction("choices", "<answer>Answer: B</answer>", ["B"])["score"] == 1.0


def test_several_letter_questions():
    gold = ["B", "AC", "D"]
    assert score_prediction("choices", "<answer>B\nAC\nD</answer>", gold)["exact"] == 1.0
    result = score_prediction("choices", "<answer>B\nA\nthe third one</answer>", gold)
    assert result == {"score": pytest.approx(1 / 3), "exact": 0.0, "parsed": 1.0}


@pytest.mark.parametrize(
    ("kind", "gold"),
    [("token_f1", [["Denver Broncos", "Broncos"]]), ("token_f1", [["1879"], ["Merrow"]]),
     ("choices", ["BD"]), ("choices", ["A", "CD"])],
)  # fmt: skip
def test_formatted_gold_scores_one(kind, gold):
    output = f"Some reasoning first.\n{format_answer(kind, gold)}"
    assert score_prediction(kind, output, gold) == dict.fromkeys(METRIC_KEYS[kind], 1.0)


@pytest.mark.parametrize(
    ("kind", "gold", "message"),
    [
        ("token_f1", ["Denver"], "not a list of acceptable answers"),
        ("token_f1", [[]], "needs at least one answer"),
        ("token_f1", [["the"]], "empty after normalisation"),
        ("token_f1", [["two\nlines"]], "spans several lines"),
        ("choices", ["b"], "not a string of capital letters"),
        ("choices", "BD", "not a string of capital letters|is empty"),
        ("choices", [], "is empty"),
    ],
)
def test_malformed_gold_is_an_error(kind, gold, message):
    with pytest.raises(ValueError, match=message):
        format_answer(kind, gold)
