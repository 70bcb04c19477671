"""QA audit 3: whole distractors are packed once (a copy only when the pool is used up); sample i asks item i
of one question order per (task, seed), the same at every length; malformed source rows are errors that name
the task, file and row; a question whose answer every other document states is a Redraw saying so; a list
of depths is cycled across samples."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from longtasks.families.qa import packing
from longtasks.families.qa.askable import Order
from longtasks.generation import generate_samples
from longtasks.registry import get_task
from longtasks.task import Redraw

_HEADING = re.compile(r"(?:^|\n\n)Document (\d+):\n")
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa"


def texts(prompt: str) -> list[str]:
    """The documents of a prompt's context, in order."""
    context = prompt[prompt.index("<context>\n") + 10 : prompt.rindex("\n</context>")]
    marks = list(_HEADING.finditer(context))
    ends = [m.start() for m in marks[1:]] + [len(context)]
    return [context[m.end() : end] for m, end in zip(marks, ends, strict=True)]


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, str]:
    """Sources in the three schemas (as the auditor's): 40 SQuAD paragraphs, 30 QuALITY articles of
    200-600 words, 20 TOEFL lectures with 2 questions each."""
    root, rng = tmp_path_factory.mktemp("qa_audit3"), random.Random(1)

    def para(n: int, i: int) -> str:
        return f"Paragraph {i} begins. " + " ".join(rng.choice(WORDS.split()) for _ in range(n)) + "."

    squad = []
    for i in range(40):
        context = para(rng.randint(80, 300), i) + f" The capital of land{i} is Zorbtown{i}."
        answers = {"text": [f"Zorbtown{i}"], "answer_start": [0]}
        squad.append(
            {"id": f"q{i}", "context": context, "question": f"Capital of land{i}?", "answers": answers}
        )
    quality = [
        {
            "article": f"<p>{para(rng.randint(200, 600), i)}</p><p>The hero of story {i} is Quux{i}.</p>",
            "question": f"Who is the hero of story {i}?",
            "question_unique_id": f"qu{i}",
            "options": [f"Quux{i}", "Bob", "Carol", "Dan"],
            "gold_label": 1,
        }
        for i in range(30)
    ]
    toefl = [
        {
            "context": para(rng.randint(100, 300), i),
            "questions": [
                f"Question: What is lecture {i} about?\nOptions: A. one B. two C. three D. four",
                f"Question: Which two points for lecture {i}?\nOptions: A. x B. y C. z D. w",
            ],
            "answer": ["B", "DB"],
        }
        for i in range(20)
    ]
    return {
        "qa_squad": write_jsonl(root / "squad.jsonl", squad),
        "qa_quality": write_jsonl(root / "quality.jsonl", quality),
        "qa_toefl": write_jsonl(root / "toefl.jsonl", toefl),
    }


def generate(task: str, length: int, n: int, tokenizer, sources, **options):
    knobs = {"source": sources[task], **options.pop("knobs", {})}
    return generate_samples(task, length, n, tokenizer=tokenizer, knobs=knobs, **options)


def asked(samples) -> list[tuple[str, ...]]:
    return [tuple(s.meta["question_ids"]) for s in samples]


# --- 1. whole distractors are packed once ----------------------------------------------------------------


def fake_costs(bodies: list[int]) -> SimpleNamespace:
    return SimpleNamespace(bodies=bodies, header=lambda number: 3)


def test_a_second_pass_never_starts_while_a_distractor_is_left_out():
    """Room is left after one pass but only the large documents are out: the cut document fills it."""
    costs = fake_costs([100, 50, 60, 70, 400, 500])
    stream = packing.DistractorStream([1, 2, 3, 4, 5], random.Random(0))
    target = 103 + 53 + 63 + 73 + 100  # the gold, the three small ones, 100 tokens to spare
    taken, left, _ = packing._pack(costs, 0, stream, target, smallest=50)
    assert sorted(taken) == [1, 2, 3] and left == 100


def test_a_pass_repeats_once_every_distractor_is_in():
    costs = fake_costs([100, 50, 60])
    stream = packing.DistractorStream([1, 2], random.Random(0))
    taken, left, _ = packing._pack(costs, 0, stream, 103 + 3 * (53 + 63) + 20, smallest=50)
    assert sorted(taken) == [1, 1, 1, 2, 2, 2] and left == 20


@pytest.mark.parametrize(("task", "length"), [("qa_quality", 4096), ("qa_toefl", 4096), ("qa_toefl", 6000)])
def test_no_document_repeats_when_the_pool_holds_more_than_the_length(tokenizer, sources, task, length):
    for sample in generate(task, length, 20, tokenizer, sources):
        documents = texts(sample.prompt)
        assert len(set(documents)) == len(documents), sample.id


# --- 2. one question order per (task, seed) ---------------------------------------------------------------


def test_a_configuration_asks_distinct_questions(tokenizer, sources):
    """40 TOEFL questions, 40 samples: each asked once (drawn per sample, 26 were distinct)."""
    ids = asked(generate("qa_toefl", 8192, 40, tokenizer, sources))
    assert len(set(ids)) == 40


@pytest.mark.parametrize("task", ["qa_squad", "qa_toefl"])
def test_sample_i_asks_the_same_question_at_every_length(tokenizer, sources, task):
    by_length = [asked(generate(task, length, 12, tokenizer, sources)) for length in (2048, 8192, 16384)]
    assert by_length[0] == by_length[1] == by_length[2]


def test_several_questions_per_prompt_keep_their_document_and_questions_across_lengths(tokenizer, sources):
    knobs = {"num_questions": 2}
    short, long = (asked(generate("qa_toefl", n, 8, tokenizer, sources, knobs=knobs)) for n in (3000, 12000))
    assert short == long and len(set(short)) == 8


def test_the_order_survives_resuming_and_workers(tokenizer, sources):
    whole = generate("qa_toefl", 4096, 12, tokenizer, sources)
    resumed = generate("qa_toefl", 4096, 4, tokenizer, sources, start=8)
    parallel = generate("qa_toefl", 4096, 12, tokenizer, sources, workers=2)
    assert [s.prompt for s in resumed] == [s.prompt for s in whole[8:]]
    assert [s.prompt for s in parallel] == [s.prompt for s in whole]


def test_another_seed_asks_in_another_order(tokenizer, sources):
    first, second = (asked(generate("qa_toefl", 4096, 10, tokenizer, sources, seed=s)) for s in (0, 1))
    assert first != second


def test_a_question_too_long_for_the_length_falls_back_to_one_that_fits_spreading_from_the_end():
    order = Order(tuple((i, (0,)) for i in range(8)), (5, 100, 5, 100, 5, 5, 5, 5))
    firsts = [next(order.positions(i, 10)) for i in range(8)]
    # own items where they fit; samples 1 and 3 take the last fitting items, unused by samples 0-5
    assert firsts == [0, 7, 2, 6, 4, 5, 6, 7]
    assert len(set(firsts[:6])) == 6


def test_at_a_short_length_every_asked_article_fits_and_most_stay_the_same(tokenizer, sources):
    short = generate("qa_quality", 1000, 20, tokenizer, sources)
    long = generate("qa_quality", 8192, 20, tokenizer, sources)
    same = sum(a == b for a, b in zip(asked(short), asked(long), strict=True))
    assert len(set(asked(short))) == 20 and same >= 10


# --- 3. malformed source rows ---------------------------------------------------------------------------


def load(task: str, path: str):
    spec = get_task(task)
    return spec.load(spec.make_knobs({"source": path}))[1]


def squad_row(i: int, **changes) -> dict:
    row = {
        "id": f"s{i}",
        "context": f"Paragraph {i} about town{i}.",
        "question": f"Where {i}?",
        "answers": {"text": [f"town{i}"], "answer_start": [0]},
    }
    return {**row, **changes}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"answers": {"text": "town2", "answer_start": [0]}}, "answers.text is str 'town2', not a list"),
        ({"context": None}, "context is null, not a string"),
        ({"question": 7}, "question is int 7, not a string"),
        ({"answers": "{'text': ['town2']}"}, "not {text: [...]}; a CSV file cannot hold lists"),
    ],
)
def test_a_mistyped_squad_row_names_the_task_file_and_row(tmp_path, change, message):
    rows = [squad_row(i) for i in range(4)]
    rows[2] = squad_row(2, **change)
    path = write_jsonl(tmp_path / "squad.jsonl", rows)
    with pytest.raises(
        ValueError, match=rf"^qa_squad: source '{re.escape(path)}': row 3: .*{re.escape(message)}"
    ):
        load("qa_squad", path)


def test_a_blank_squad_question_is_not_asked(tmp_path):
    rows = [squad_row(i) for i in range(4)] + [squad_row(1, question="   ")]
    pool = load("qa_squad", write_jsonl(tmp_path / "squad.jsonl", rows))
    assert [q.text for d in pool.documents for q in d.questions] == [f"Where {i}?" for i in range(4)]


def quality_rows(labels: list) -> list[dict]:
    return [
        {
            "article": f"Story {i}.",
            "question": f"Who {i}?",
            "question_unique_id": f"u{i}",
            "options": ["a", "b", "c", "d"],
            "gold_label": label,
        }
        for i, label in enumerate(labels)
    ]


def test_a_numeric_string_gold_label_is_read_as_its_number(tmp_path):
    """A column of strings ("1"; a mixed column is decoded to numbers by `datasets`) used to drop every
    question."""
    pool = load("qa_quality", write_jsonl(tmp_path / "quality.jsonl", quality_rows(["2", "4", "1"])))
    assert [d.questions[0].answer for d in pool.documents] == ["B", "D", "A"]


@pytest.mark.parametrize(
    ("label", "message"),
    [("two", "row 2: gold_label is str 'two', not a number 1-4"), (0, "row 2: gold_label 0; QuALITY's")],
)
def test_a_bad_gold_label_names_the_task_file_and_row(tmp_path, label, message):
    path = write_jsonl(tmp_path / "quality.jsonl", quality_rows([1, label, 3]))
    with pytest.raises(ValueError, match=rf"^qa_quality: source '{re.escape(path)}': {re.escape(message)}"):
        load("qa_quality", path)


def test_a_toefl_row_with_unmatched_answers_names_the_task_file_and_row(tmp_path):
    rows = [{"context": f"Lecture {i}.", "questions": ["Q1?", "Q2?"], "answer": ["A", "B"]} for i in range(3)]
    rows[1]["answer"] = ["A"]
    path = write_jsonl(tmp_path / "toefl.jsonl", rows)
    with pytest.raises(
        ValueError, match=rf"^qa_toefl: source '{re.escape(path)}': row 2: the row has 2 ques"
    ):
        load("qa_toefl", path)


def test_a_csv_file_is_refused_and_a_folder_of_them_says_why(tmp_path):
    lines = ["id,context,question,answers"] + [
        f"s{i},Text {i}.,Q {i}?,\"{{'text': ['x']}}\"" for i in range(3)
    ]
    (tmp_path / "validation.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ValueError, match=r"qa_squad: source .* is a CSV file, which cannot hold the list columns"
    ):
        load("qa_squad", str(tmp_path / "validation.csv"))
    with pytest.raises(ValueError, match=r"row 1: answers is str .*a CSV file cannot hold lists"):
        load("qa_squad", str(tmp_path))


# --- 4. a question no distractor can surround; a limit no question fits ------------------------------------


def test_every_other_document_stating_the_answer_is_a_redraw_that_says_so(tmp_path, tokenizer):
    rows = [
        squad_row(i, context=f"Paragraph {i}: the city is Paris.", answers={"text": ["Paris"]})
        for i in range(20)
    ]
    path = write_jsonl(tmp_path / "paris.jsonl", rows)
    with pytest.raises(
        Redraw, match=r"every other document of the source states a gold answer of question 's\d+'"
    ):
        generate_samples("qa_squad", 2048, 1, tokenizer=tokenizer, knobs={"source": path})


def test_a_limit_no_question_fits_says_which_limit_would(tokenizer, sources):
    with pytest.raises(
        ValueError, match=r"document_prompt_limit=300 .* raise the limit to at least \d+"
    ) as error:
        generate("qa_quality", 2048, 1, tokenizer, sources, knobs={"document_prompt_limit": 300})
    assert "<= 0" not in str(error.value)


# --- 5. a list of depths is cycled -----------------------------------------------------------------------


def test_a_list_of_depths_is_cycled_across_samples(tokenizer, sources):
    samples = generate("qa_toefl", 8192, 6, tokenizer, sources, knobs={"depth": "0,1"})
    firsts = [s.meta["document"] == 1 for s in samples]
    lasts = [s.meta["document"] == s.meta["num_documents"] for s in samples]
    assert firsts == [True, False] * 3 and lasts == [False, True] * 3


def test_a_sample_whose_own_question_leaves_no_exact_fill_takes_the_next_one(tmp_path, tokenizer, sources):
    """Each retry used to keep the same document in the same place, so a document that left fewer tokens than
    a cut document needs failed all 12 draws and stopped the run (a 5-paragraph source failed at 3 of 96
    lengths). The sample now moves to the next question of the order."""
    rows = [json.loads(line) for line in Path(sources["qa_squad"]).read_text().splitlines()[:5]]
    source = write_jsonl(tmp_path / "squad5.jsonl", rows)
    for length in range(400, 2600, 23):
        samples = generate_samples("qa_squad", length, 5, tokenizer=tokenizer, knobs={"source": source})
        assert [s.input_tokens for s in samples] == [length] * 5
