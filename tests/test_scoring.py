"""Parsing, normalisation, per-sample metrics, the gold-answer format and confidence intervals."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from longtasks.scoring import extract_answer, format_answer, normalize_text, score_prediction
from longtasks.scoring.aggregate import depth_bin, mean_ci
from longtasks.scoring.metrics import METRIC_KEYS
from longtasks.scoring.parse import EMPTY_SET_WORDS, chapter_numbers

KINDS = ("text", "list", "set", "int_set")

# ---------------------------------------------------------------- extract_answer


def test_last_answer_block_wins():
    assert extract_answer("<answer>Alice</answer> no wait <answer>Bob</answer>") == "Bob"


def test_no_block_is_none_and_empty_block_is_empty():
    assert extract_answer("The answer is Alice.") is None
    assert extract_answer("") is None
    assert extract_answer("<answer>   </answer>") == ""


def test_tags_are_case_insensitive_and_may_hold_spaces():
    assert extract_answer("<ANSWER>Alice</Answer>") == "Alice"
    assert extract_answer("< answer >Alice< / answer >") == "Alice"


def test_missing_closing_tag_runs_to_end():
    assert extract_answer("reasoning... <answer>Red Lamp\n") == "Red Lamp"
    # An earlier complete block does not beat a later truncated one: the last block is the answer.
    assert extract_answer("<answer>A</answer> <answer>B") == "B"


def test_think_blocks_are_removed_with_fake_answers_inside():
    text = "<think>maybe <answer>Wrong</answer></think>\n<answer>Right</answer>"
    assert extract_answer(text) == "Right"
    assert extract_answer("<think>only <answer>Wrong</answer></think>") is None


def test_unclosed_think_is_reasoning_up_to_the_end():
    assert extract_answer("<think>let me see <answer>Wrong</answer>") is None
    assert extract_answer("<answer>Right</answer><think>hmm, or <answer>Wrong") == "Right"


def test_orphan_closing_think_drops_template_opened_reasoning():
    assert extract_answer("I think <answer>Wrong</answer></think><answer>Right</answer>") == "Right"
    nested = "<think>a<think>b</think>c <answer>Wrong</answer></think><answer>Right</answer>"
    assert extract_answer(nested) == "Right"


def test_non_string_prediction_is_a_clear_error():
    with pytest.raises(TypeError, match="use ''"):
        extract_answer(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The Red Lamp", "red lamp"),
        ('  "the   red\tlamp."  ', "red lamp"),
        ("“An Apple”", "apple"),
        ("**Red Lamp**", "red lamp"),
        ("ＲＥＤ　ＬＡＭＰ", "red lamp"),  # full-width letters and space (NFKC)
        ("Theodore", "theodore"),  # articles only as whole words
        ("Anna's hat", "anna's hat"),
        ("A", ""),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_normalize_keeps_distinct_entities_distinct():
    assert normalize_text("Red Lamp") != normalize_text("Red Lamps")
    assert normalize_text("Mary-Jane") != normalize_text("Mary Jane")


# ---------------------------------------------------------------- metrics per kind


def test_text_exact_match_after_normalisation():
    assert score_prediction("text", "<answer>the RED lamp.</answer>", "Red Lamp") == {
        "score": 1.0,
        "exact": 1.0,
        "parsed": 1.0,
    }
    assert score_prediction("text", "<answer>Red Lamps</answer>", "Red Lamp")["score"] == 0.0
    # A sentence around the answer is not the answer: strict exact match.
    assert score_prediction("text", "<answer>It is the Red Lamp</answer>", "Red Lamp")["score"] == 0.0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("output", ["", "Alice, Bob", "<answer></answer>", "<answer> \n </answer>"])
def test_unparseable_or_empty_scores_zero_on_every_metric(kind, output):
    gold = {"text": "Alice", "list": ["Alice"], "set": ["Alice"], "int_set": [3]}[kind]
    result = score_prediction(kind, output, gold)
    assert set(result) == set(METRIC_KEYS[kind])
    assert all(value == 0.0 for value in result.values())


def test_gold_may_be_json_or_object():
    for kind, gold in [("text", "Red Lamp"), ("list", ["A b", "C d"]), ("set", ["x y"]), ("int_set", [4, 2])]:
        output = format_answer(kind, gold)
        assert score_prediction(kind, output, gold) == score_prediction(kind, output, json.dumps(gold))
    # A raw text gold that happens to be valid JSON of another type is still taken literally.
    assert score_prediction("text", "<answer>42</answer>", "42")["score"] == 1.0


def test_unknown_kind_names_valid_kinds():
    with pytest.raises(ValueError, match=r"'bag'.*text, list, set, int_set"):
        score_prediction("bag", "<answer>x</answer>", "x")


def test_malformed_gold_is_an_error():
    with pytest.raises(ValueError, match="not a JSON list"):
        score_prediction("set", "<answer>x</answer>", "x")
    with pytest.raises(ValueError, match="not an integer"):
        score_prediction("int_set", "<answer>3</answer>", ["three"])
    with pytest.raises(ValueError, match="empty"):
        score_prediction("list", "<answer>x</answer>", [])


def test_list_positions_missing_and_extra():
    gold = ["Alice", "Bob", "Carol"]
    full = score_prediction("list", "<answer>alice; the bob\nCarol</answer>", gold)
    assert full == {"score": 1.0, "exact": 1.0, "parsed": 1.0}
    missing = score_prediction("list", "<answer>Alice, Bob</answer>", gold)
    assert missing["score"] == pytest.approx(2 / 3) and missing["exact"] == 0.0
    extra = score_prediction("list", "<answer>Alice, Bob, Carol, Dave</answer>", gold)
    assert extra["score"] == pytest.approx(3 / 4) and extra["exact"] == 0.0
    swapped = score_prediction("list", "<answer>Bob, Alice, Carol</answer>", gold)
    assert swapped["score"] == pytest.approx(1 / 3)


def test_list_accepts_enumerators_and_bullets():
    output = "<answer>\n1. Alice\n2) Bob\n- Carol\n</answer>"
    assert score_prediction("list", output, ["Alice", "Bob", "Carol"])["exact"] == 1.0


@pytest.mark.parametrize(
    ("body", "score", "exact"),
    [
        ("1. Alice\n3. Carol\n4. Dan", 0.75, 0.0),  # one numbered answer left out: the rest stay in place
        ("4. Dan\n3. Carol\n2. Bob\n1. Alice", 1.0, 1.0),  # numbered out of order
        ("1. Alice\n2. not found\n3. Carol\n4. Dan", 0.75, 0.0),
        ("1) Alice; 2) Bob; 3) Carol; 4) Dan; 5) Eve", 0.8, 0.0),  # an extra numbered answer still counts
        ("1. Alice\n1. Carol\n3. Dan", 0.25, 0.0),  # a repeated number: written order
        ("Alice\n3. Carol\n4. Dan", 0.25, 0.0),  # not every item numbered: written order
        ("1. Alice\n99999999999. Dan", 0.25, 0.0),
    ],
)
def test_list_answers_numbered_by_the_model_are_matched_by_their_numbers(body, score, exact):
    """The paper matches (position, key, value): a skipped needle must not shift the ones after it."""
    result = score_prediction("list", f"<answer>{body}</answer>", ["Alice", "Bob", "Carol", "Dan"])
    assert result == {"score": pytest.approx(score), "exact": exact, "parsed": 1.0}


def test_set_iou_precision_recall():
    gold = ["Red Lamp", "Blue Cup", "Old Map"]
    exact = score_prediction("set", "<answer>Old Map, Red Lamp, and the Blue Cup</answer>", gold)
    assert exact == {
        "score": 1.0,
        "iou": 1.0,
        "exact_set": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "parsed": 1.0,
    }
    partial = score_prediction("set", "<answer>Red Lamp, Blue Cup, Green Hat</answer>", gold)
    assert partial["iou"] == pytest.approx(2 / 4)
    assert partial["precision"] == pytest.approx(2 / 3) and partial["recall"] == pytest.approx(2 / 3)
    assert partial["exact_set"] == 0.0


def test_extra_items_lower_iou():
    gold = ["Red Lamp", "Blue Cup"]
    base = score_prediction("set", "<answer>Red Lamp, Blue Cup</answer>", gold)["score"]
    padded = score_prediction("set", "<answer>Red Lamp, Blue Cup, Old Map, Green Hat</answer>", gold)
    assert base == 1.0 and padded["score"] == pytest.approx(0.5) and padded["recall"] == 1.0


def test_empty_gold_set_needs_an_explicit_none():
    assert score_prediction("set", "<answer>None</answer>", [])["score"] == 1.0
    assert score_prediction("set", "<answer>Red Lamp</answer>", [])["score"] == 0.0
    assert score_prediction("set", "<answer>None.</answer>", ["Red Lamp"])["score"] == 0.0
    assert score_prediction("int_set", "<answer>none</answer>", [])["score"] == 1.0
    assert score_prediction("int_set", "<answer>I cannot tell</answer>", [])["parsed"] == 0.0


def test_int_set_extracts_every_integer():
    assert chapter_numbers("Chapters 3, 17 and 42") == ([3, 17, 42], [])
    result = score_prediction("int_set", "<answer>Chapters 3, 17 and 42</answer>", [42, 3, 17])
    assert result["exact_set"] == 1.0
    result = score_prediction("int_set", "<answer>Chapter 3 and chapter 5</answer>", [3, 17])
    assert result["iou"] == pytest.approx(1 / 3)
    assert result["precision"] == pytest.approx(1 / 2) and result["recall"] == pytest.approx(1 / 2)


# ---------------------------------------------------------------- format_answer


def test_format_answer_shapes():
    assert format_answer("text", "Red Lamp") == "<answer>Red Lamp</answer>"
    assert format_answer("list", ["X", "Y"], tags=False) == "X, Y"
    assert format_answer("int_set", [17, 3, 3]) == "<answer>3, 17</answer>"
    assert format_answer("set", []) == "<answer>none</answer>"


@pytest.mark.parametrize(
    ("kind", "answer", "message"),
    [
        ("set", ["Salt, Pepper"], "separator"),
        ("list", [], "at least one"),
        ("int_set", [-1], "non-negative"),
        ("int_set", [True], "non-negative"),
        ("text", "The", "empty after normalisation"),
        ("text", "x</answer>", "tag"),
        ("set", ["Nothing"], "empty set"),
        ("set", "Red Lamp", "list of strings"),
        ("tuple", ["x"], "unknown answer_kind"),
    ],
)
def test_format_answer_rejects_what_cannot_round_trip(kind, answer, message):
    with pytest.raises(ValueError, match=message):
        format_answer(kind, answer)


# ---------------------------------------------------------------- property tests

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéñßøÅ"
_word = st.text(alphabet=_LETTERS + "'-.0123456789", min_size=1, max_size=9).filter(
    lambda word: any(char in _LETTERS for char in word)
)
entity = (
    st.lists(_word, min_size=1, max_size=4)
    .map(" ".join)
    .filter(lambda name: any(w.lower() not in {"a", "an", "the"} for w in name.split()))
    .filter(lambda name: normalize_text(name) not in EMPTY_SET_WORDS)
)
GOLD = {
    "text": entity,
    "list": st.lists(entity, min_size=1, max_size=6),
    "set": st.lists(entity, min_size=0, max_size=6),
    "int_set": st.lists(st.integers(min_value=0, max_value=5000), max_size=8),
}
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


@PROPERTY
@given(data=st.data(), kind=st.sampled_from(KINDS))
def test_formatted_gold_always_scores_one(data, kind):
    gold = data.draw(GOLD[kind])
    result = score_prediction(kind, format_answer(kind, gold), gold)
    assert result["score"] == 1.0 and result["parsed"] == 1.0
    # The same answer after reasoning, in a truncated last block, also scores 1.
    wrapped = f"<think>maybe <answer>junk</answer></think>{format_answer(kind, gold, tags=False)}"
    assert score_prediction(kind, f"<answer>{wrapped}", gold)["score"] == 1.0


@PROPERTY
@given(kind=st.sampled_from(KINDS), body=st.text(max_size=60), tagged=st.booleans(), gold=entity)
def test_score_always_in_unit_interval(kind, body, tagged, gold):
    answer = {"text": gold, "list": [gold, "Old Map"], "set": [gold], "int_set": [1, 22]}[kind]
    output = f"<answer>{body}</answer>" if tagged else body
    result = score_prediction(kind, output, answer)
    assert set(result) == set(METRIC_KEYS[kind])
    assert all(0.0 <= value <= 1.0 and not math.isnan(value) for value in result.values())


@PROPERTY
@given(data=st.data())
def test_permuting_a_set_answer_keeps_the_score(data):
    gold = data.draw(st.lists(entity, min_size=1, max_size=5, unique=True))
    extras = data.draw(st.lists(entity, max_size=3))
    predicted = data.draw(st.lists(st.sampled_from(gold), max_size=5)) + extras
    permuted = data.draw(st.permutations(predicted))
    first = score_prediction("set", "<answer>" + "; ".join(predicted) + "</answer>", gold)
    second = score_prediction("set", "<answer>" + "\n".join(permuted) + "</answer>", gold)
    assert first == second


# ---------------------------------------------------------------- confidence intervals


def test_ci_single_sample_and_constant_scores():
    one = mean_ci([0.7])
    assert (one.mean, one.low, one.high, one.n) == (0.7, 0.7, 0.7, 1)
    constant = mean_ci([1.0] * 50)
    assert (constant.low, constant.high) == (1.0, 1.0)


def test_ci_brackets_the_mean_and_matches_the_binomial_width():
    scores = [1.0] * 200 + [0.0] * 200
    ci = mean_ci(scores)
    assert ci.low < 0.5 < ci.high
    # Normal approximation half-width: 1.96 * sqrt(0.25 / 400) = 0.049.
    assert 0.04 < (ci.high - ci.low) / 2 < 0.06
    assert mean_ci(scores) == ci  # fixed seed: reproducible


def test_ci_stays_inside_observed_range():
    ci = mean_ci([1.0] * 97 + [0.0] * 3)
    assert 0.0 <= ci.low <= ci.mean <= ci.high <= 1.0


def test_ci_rejects_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        mean_ci([])
    with pytest.raises(ValueError, match="level"):
        mean_ci([0.0, 1.0], level=95)


@pytest.mark.parametrize(
    ("depths", "label"),
    [
        ([0.0], "[0.0,0.2)"),
        ([0.19], "[0.0,0.2)"),
        ([0.2], "[0.2,0.4)"),
        ([0.1, 0.9], "[0.4,0.6)"),
        ([1.0], "[0.8,1.0]"),
        ([], "none"),
    ],
)
def test_depth_bins(depths, label):
    assert depth_bin(depths) == label


def test_depth_outside_unit_interval_is_an_error():
    with pytest.raises(ValueError, match="outside"):
        depth_bin([1.2])


@pytest.mark.parametrize(
    ("kind", "body", "gold", "score"),
    [
        ("set", "red lamp, old map and blue cup", ["red lamp", "old map", "blue cup"], 1.0),
        ("set", "red lamp & old map", ["red lamp", "old map"], 1.0),
        ("int_set", "3, 11 and 13", [3, 11, 13], 1.0),
        ("int_set", "Chapters 3, 11 and chapter 13", [3, 11, 13], 1.0),
        ("int_set", "1-13", [1, 13], 0.0),  # a range is no chapter number (it read as {1, 13} before)
        ("int_set", "3, 1-13", [3], 0.5),  # and it counts as a wrong answer
        ("list", "Jo Bryan\nthe old mill and Ann Lee", ["Jo Bryan", "the old mill", "Ann Lee"], 1.0),
    ],
)
def test_one_list_grammar_for_every_list_and_set_answer(kind, body, gold, score):
    assert score_prediction(kind, f"<answer>{body}</answer>", gold)["score"] == pytest.approx(score)


@pytest.mark.parametrize(
    ("kind", "echo", "gold"),
    [
        ("list", "answer to question 1\nanswer to question 2\n...", ["a", "b"]),
        ("list", "value of key 1\nvalue of key 2", ["x-1", "y-2"]),
        ("text", "name of item", "red lamp"),
        ("set", "first item, second item, ...", ["red lamp"]),
        ("int_set", "first chapter number, second chapter number", [3]),
        ("set", "first word, second word", ["apple"]),
        ("list", "answer 1\nanswer 2", ["a", "b"]),  # the first release's example
    ],
)
def test_an_echo_of_the_prompts_example_is_not_parsed(kind, echo, gold):
    assert score_prediction(kind, f"<answer>{echo}</answer>", gold)["parsed"] == 0.0


def test_gold_answers_never_read_as_placeholders_or_split():
    with pytest.raises(ValueError, match="placeholder"):
        format_answer("set", ["first item"])
    with pytest.raises(ValueError, match="separator"):
        format_answer("set", ["salt and pepper"])
