"""The fitter counts every piece where it stands in the context, also for SentencePiece-style (Metaspace)
tokenizers, which split only at spaces: a heading merges with the word before it ("▁water." alone,
"▁water" + ".\\n" before a heading) and with the segment after it ("2\\nThe", not "▁The"); and when one
filler swap cannot absorb a difference, several sentences are drawn again."""

from __future__ import annotations

import random

import pytest
from _trained_tokenizers import train_tokenizer

import longtasks.fit as fit
from longtasks.filler_bank import FillerBank
from longtasks.fit import LengthError, _compensate, _Pieces
from longtasks.generation import generate_samples
from longtasks.registry import get_task
from longtasks.task import BuildContext
from longtasks.tokenizer import LengthTokenizer


@pytest.fixture(scope="module")
def unigram(tokenizer) -> LengthTokenizer:
    """A Metaspace unigram trained on story text without line breaks (as a tokenizer trained on prose
    is): it learns no merge across a line break, so headings meet words it splits differently."""
    prompts = [s.prompt for s in generate_samples("story_retrieval", 6000, 2, tokenizer=tokenizer)]
    return train_tokenizer("unigram", [p.replace("\n", " ") for p in prompts], vocab_size=600)


def test_story_fits_a_short_length_with_a_metaspace_tokenizer(unigram):
    """At 2000 tokens the pieces' costs fell 10-25 tokens short of the real count, more than one filler
    swap could absorb: every draw of sample 0 failed ("cannot compensate a -6-token difference")."""
    for sample in generate_samples("story_retrieval", 2000, 3, tokenizer=unigram):
        assert sample.input_tokens == 2000 == len(unigram.hf(sample.prompt)["input_ids"])


@pytest.mark.parametrize("task", ["story_retrieval", "story_inventory"])
def test_piece_costs_sum_to_the_real_count_before_verifying(unigram, monkeypatch, task):
    """What the fitter believes (the pieces' costs and the frame) matches the real count before the
    verifying pass has to correct anything (it was 11-26 tokens off with this tokenizer)."""
    seen: list[tuple[int, int]] = []
    verify = fit._verify

    def spy(pieces, frame, length, tokenizer, bank, rng, *, chat):
        context = "".join(pieces.texts)
        total = tokenizer.count_model_input(fit.model_text(frame.build(context), tokenizer, chat))
        seen.append((sum(pieces.tokens) - tokenizer.count(context), total - length))
        return verify(pieces, frame, length, tokenizer, bank, rng, chat=chat)

    monkeypatch.setattr(fit, "_verify", spy)
    generate_samples(task, 5000, 2, tokenizer=unigram)
    assert seen and all(abs(pieces) <= 1 and abs(total) <= 1 for pieces, total in seen), seen


def test_default_tokenizer_costs_are_unchanged(tokenizer):
    """For the default byte-level BPE the in-context costs equal the plain ones (rows stay the same):
    a heading costs what it does after a bare ".", and no heading or frame edge shifts."""
    task = get_task("story_retrieval")
    draft = task.build(task.make_knobs({}), 12, random.Random(3), BuildContext(8000, tokenizer, False, 0, 0))
    headings, _ = fit._piece_costs(draft.sections, tokenizer)
    dot = tokenizer.count(".")
    for i, section in enumerate(draft.sections):
        plain = section.heading + "\n" if i == 0 else ".\n\n" + section.heading + "\n"
        assert headings[i] == tokenizer.count(plain) - (dot if i else 0)
    pieces = _Pieces()
    at = []
    for i, section in enumerate(draft.sections):
        at.append(len(pieces.texts))
        pieces.add(fit._heading_text(section.heading, i == 0), headings[i], False)
        for seg in section.segments:
            pieces.add(" " + seg.text, 0, False)
    assert fit._recount_headings(pieces, at[1:], tokenizer) == 0
    assert fit._frame_edges_delta(pieces, draft.frame, draft.sections, tokenizer) == 0


def _bank() -> FillerBank:
    """Sentences of 10-12 tokens only: no swap changes a sentence by more than 2 tokens."""
    by_count = {c: tuple(f" s{c}_{k}." for k in range(3)) for c in (10, 11, 12)}
    return FillerBank(by_count, (10, 11, 12))


def _context(fillers: list[int]) -> _Pieces:
    pieces = _Pieces()
    pieces.add("Chapter 1\n", 3, False)
    pieces.add("Lead.", 2, False, "lead")
    for k, count in enumerate(fillers):
        pieces.add(f" f{k}.", count, True)
        pieces.add(f" fact {k}.", 4, False, f"fact{k}")
    return pieces


@pytest.mark.parametrize("delta", [-10, -25, 7, 25])
def test_compensate_spreads_a_difference_over_several_sentences(delta):
    """-10 with sentences of 10-12 tokens: no single swap (it was a LengthError), but one sentence fewer
    does it; +25 needs new sentences. The segments keep their order and the total moves by `delta`."""
    pieces = _context([10, 12, 11, 10, 12])
    before = sum(pieces.tokens)
    _compensate(pieces, delta, _bank(), random.Random(0))
    assert sum(pieces.tokens) == before + delta
    assert [k for k in pieces.keys if k] == ["lead", *(f"fact{k}" for k in range(5))]
    assert all(t in (10, 11, 12) for t, f in zip(pieces.tokens, pieces.filler, strict=True) if f)


def test_compensate_names_the_difference_and_what_would_work():
    pieces = _context([10])
    with pytest.raises(LengthError, match=r"-15-token difference.*1 filler sentences.*longer length"):
        _compensate(pieces, -15, _bank(), random.Random(0))
