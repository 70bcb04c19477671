"""RULER family truths over many seeds: an independent reader that sees only the prompt text recovers
every gold answer; a reader that sees only the question is at chance; identifiers never repeat."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from longtasks.fit import LengthError
from longtasks.generation import build_sample_with_draft, generate_samples
from longtasks.registry import get_task
from longtasks.scoring import format_answer, score_prediction

many = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_KV = re.compile(r"The value for key ([a-z0-9-]+) is: ([a-z0-9-]+)\.")
_KEY_ASKED = re.compile(r"What is the value for key ([a-z0-9-]+)\?")
_ASSIGN = re.compile(r"VAR ([A-Z]+) = (VAR ([A-Z]+)|(\d+))\.")
_ITEM = re.compile(r"^(\d+)\. ([a-z]+)$", re.MULTILINE)


def context_of(prompt: str) -> str:
    return prompt[prompt.index("<context>\n") + 10 : prompt.rindex("\n</context>")]


def read_niah(prompt: str) -> list[str]:
    """The values of the asked keys, found by reading the key-value sentences."""
    pairs = _KV.findall(context_of(prompt))
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), "a key occurs twice"
    table = dict(pairs)
    question = prompt[: prompt.index("<context>")]
    return [table[key] for key in _KEY_ASKED.findall(question)]


def read_vt(prompt: str) -> set[str]:
    """Every variable that resolves to the asked value, by following the assignments."""
    value = re.search(r"resolve to the value (\d+)\?", prompt).group(1)
    assigned: dict[str, str] = {}
    for name, _, source, number in _ASSIGN.findall(context_of(prompt)):
        assert name not in assigned, f"{name} is assigned twice"
        assigned[name] = source or number

    def resolves(name: str) -> str:
        seen = set()
        while assigned[name] in assigned:
            assert name not in seen, "assignment cycle"
            seen.add(name)
            name = assigned[name]
        return assigned[name]

    return {name for name in assigned if resolves(name) == value}


def read_cwe(prompt: str, k: int) -> set[str]:
    """The k most frequent words of the numbered list (the list is numbered 1..n without gaps)."""
    items = _ITEM.findall(context_of(prompt))
    assert [int(n) for n, _ in items] == list(range(1, len(items) + 1))
    counts = Counter(word for _, word in items).most_common()
    assert counts[k - 1][1] > counts[k][1] + 1, "the common words do not stand out"
    return {word for word, _ in counts[:k]}


@many
@given(length=st.integers(1200, 12000), seed=st.integers(0, 10**6), chat=st.booleans())
def test_niah_is_solved_from_the_text(tokenizer, length, seed, chat):
    (sample,) = generate_samples("ruler_niah", length, 1, seed=seed, tokenizer=tokenizer, chat=chat)
    assert read_niah(sample.prompt) == sample.answer
    assert sample.meta["needle_keys"] == _KEY_ASKED.findall(sample.question)
    assert (
        score_prediction("list", format_answer("list", read_niah(sample.prompt)), sample.answer)["score"] == 1
    )


@many
@given(length=st.integers(1200, 12000), seed=st.integers(0, 10**6), chat=st.booleans())
def test_vt_is_solved_from_the_text(tokenizer, length, seed, chat):
    (sample,) = generate_samples("ruler_vt", length, 1, seed=seed, tokenizer=tokenizer, chat=chat)
    assert read_vt(sample.prompt) == set(sample.answer)
    assert len(sample.answer) == sample.knobs["num_hops"] + 1 == len(sample.evidence_depths)


@many
@given(length=st.integers(2600, 16000), seed=st.integers(0, 10**6), chat=st.booleans())
def test_cwe_is_solved_from_the_text(tokenizer, length, seed, chat):
    (sample,) = generate_samples("ruler_cwe", length, 1, seed=seed, tokenizer=tokenizer, chat=chat)
    k = sample.knobs["num_common_words"]
    assert read_cwe(sample.prompt, k) == set(sample.answer)
    counts = Counter(word for _, word in _ITEM.findall(context_of(sample.prompt)))
    rare = [c for w, c in counts.items() if w not in sample.answer]
    assert all(counts[w] == sample.knobs["common_word_frequency"] for w in sample.answer)
    assert {c for c in rare} <= {2, 3, 4}
    assert sum(c != 3 for c in rare) == len(sample.meta["adjusted_words"]) <= 3


@pytest.mark.parametrize("task", ["ruler_niah", "ruler_vt", "ruler_cwe"])
def test_question_alone_does_not_give_the_answer(tokenizer, task):
    """A reader that sees only the question (not the context) finds no gold string in it."""
    samples = generate_samples(task, 3000, 20, seed=9, tokenizer=tokenizer)
    for sample in samples:
        question = (
            sample.prompt[: sample.prompt.index("<context>")]
            + sample.prompt[sample.prompt.rindex("</context>") :]
        )
        words = set(re.findall(r"[A-Za-z0-9-]+", question))
        assert not words & set(sample.answer)


def test_niah_depth_knob_places_needles(tokenizer):
    spec = get_task("ruler_niah")
    knobs = spec.make_knobs({"depth": "0.1,0.5,0.9,0.3"})
    depths = build_sample_with_draft(spec, knobs, 16000, 0, 0, tokenizer, False).sample.evidence_depths
    assert [round(d, 1) for d in depths] == [0.1, 0.5, 0.9, 0.3]


def test_vt_knobs_change_the_chains(tokenizer):
    (sample,) = generate_samples(
        "ruler_vt", 4000, 1, tokenizer=tokenizer, knobs={"num_chains": 3, "num_hops": 6}
    )
    assert len(sample.answer) == 7
    assert len(_ASSIGN.findall(context_of(sample.prompt))) == 3 * 7


def test_cwe_beyond_its_vocabulary_says_what_to_change(tokenizer):
    with pytest.raises(LengthError, match="raise rare_word_frequency"):
        generate_samples("ruler_cwe", 1 << 20, 1, tokenizer=tokenizer)


def test_cwe_too_short_names_the_missing_tokens(tokenizer):
    with pytest.raises(
        LengthError, match=r"common words x 30 alone take \d+ tokens more.*shortest length that works"
    ):
        generate_samples("ruler_cwe", 1800, 1, tokenizer=tokenizer)
