"""Assemble rendered chapters and filler into a prompt of exactly `length` model-input tokens.

Cheap path: token counts of every piece (chapter headers, fact sentences, filler sentences) are
computed in batches and summed; pieces are joined at boundaries where the tokenizer's
pre-tokeniser cannot merge across them, so the sum is exact for BPE tokenizers of the GPT/Qwen/
Llama-3 family. The final text is then tokenized once to verify; if a merge still moved the count
(other tokenizer families), one filler sentence is swapped for one of compensating length and the
text is verified again.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from longtasks.filler_bank import FillerBank
from longtasks.prompt import PromptFrame
from longtasks.tokenizer import LengthTokenizer
from longtasks.world.render import RenderedChapter

MAX_VERIFY_ROUNDS = 8


class LengthError(ValueError):
    """The requested length cannot be met with the requested knobs."""


@dataclass(frozen=True)
class FittedPrompt:
    prompt: str  # the user message
    model_text: str  # what the model reads: the prompt, chat-wrapped in chat mode
    input_tokens: int
    context_tokens: int
    fact_depths: dict[tuple[int, int], float]  # (chapter number, fact index) -> relative depth in the story


@dataclass
class _Piece:
    text: str
    tokens: int
    is_filler: bool
    fact: tuple[int, int] | None = None


def model_text(prompt: str, tokenizer: LengthTokenizer, chat: bool) -> str:
    """The exact text whose tokens `length` counts."""
    return tokenizer.chat_wrap(prompt) if chat else prompt


def _piece_costs(
    chapters: Sequence[RenderedChapter], tokenizer: LengthTokenizer
) -> tuple[list[int], list[list[int]]]:
    """Token cost of each chapter header and fact sentence as it appears in the joined story."""
    header_texts = []
    for i, chapter in enumerate(chapters):
        # A header follows the previous chapter's final sentence: "." + "\n\n" merge into one
        # pre-token, so its marginal cost is measured in that context.
        header_texts.append(chapter.header + "\n" if i == 0 else ".\n\n" + chapter.header + "\n")
    fact_texts = []
    for chapter in chapters:
        for j, fact in enumerate(chapter.facts):
            fact_texts.append(fact.text if j == 0 else " " + fact.text)
    counts = tokenizer.count_many(header_texts + fact_texts + ["."])
    dot = counts[-1]
    headers = [c if i == 0 else c - dot for i, c in enumerate(counts[: len(chapters)])]
    fact_counts = iter(counts[len(chapters) : -1])
    facts = [[next(fact_counts) for _ in chapter.facts] for chapter in chapters]
    return headers, facts


def frame_overhead(
    frame: PromptFrame, chapters: Sequence[RenderedChapter], tokenizer: LengthTokenizer, chat: bool
) -> int:
    """Tokens the prompt adds around the story (instructions, questions, chat template)."""
    first = chapters[0]
    sample_context = first.header + "\n" + first.facts[0].text
    total = tokenizer.count_model_input(model_text(frame.build(sample_context), tokenizer, chat))
    return total - tokenizer.count(sample_context)


def _chapter_quotas(total: int, num_chapters: int, bank: FillerBank, rng: random.Random) -> list[list[int]]:
    """Share the filler budget among chapters (varied sizes) as lists of sentence token counts."""
    weights = [rng.uniform(0.6, 1.4) for _ in range(num_chapters)]
    scale = total / sum(weights)
    raw = [int(w * scale) for w in weights]
    raw[-1] += total - sum(raw)
    plans: list[list[int]] = []
    carry = 0
    for i, quota in enumerate(raw):
        quota += carry
        carry = 0
        last = i == num_chapters - 1
        plan = bank.split(quota, rng) if quota > 0 else []
        if plan is None and not last:
            carry, plan = quota, []
        elif plan is None:
            plan = _rescue_last(quota, plans, bank, rng)
        plans.append(plan)
    return plans


def _rescue_last(quota: int, plans: list[list[int]], bank: FillerBank, rng: random.Random) -> list[int]:
    """The final quota is not representable (e.g. 1-3 tokens): borrow a sentence from an earlier chapter."""
    for plan in reversed(plans):
        for k, c in enumerate(plan):
            merged = bank.split(quota + c, rng)
            if merged is not None:
                del plan[k]
                return merged
    raise LengthError(
        f"cannot place the last {quota} filler tokens with this tokenizer's filler sentences; "
        "try a slightly different length"
    )


def _interleave(
    chapter: RenderedChapter, fact_costs: list[int], fillers: list[int], bank: FillerBank, rng: random.Random
) -> list[_Piece]:
    """First fact right after the header, then the remaining facts (in order) among the fillers."""
    pieces = [_Piece(chapter.facts[0].text, fact_costs[0], False, (chapter.number, 0))]
    rest = [
        _Piece(" " + f.text, fact_costs[j], False, (chapter.number, j))
        for j, f in enumerate(chapter.facts[1:], start=1)
    ]
    slots = sorted(rng.randrange(len(fillers) + 1) for _ in rest)
    slot_iter = iter(slots)
    next_slot = next(slot_iter, None)
    fact_iter = iter(rest)
    for position in range(len(fillers) + 1):
        while next_slot == position:
            pieces.append(next(fact_iter))
            next_slot = next(slot_iter, None)
        if position < len(fillers):
            count = fillers[position]
            pieces.append(_Piece(bank.draw(count, rng, avoid=pieces[-1].text), count, True))
    return pieces


def fit_prompt(
    chapters: Sequence[RenderedChapter],
    frame: PromptFrame,
    length: int,
    tokenizer: LengthTokenizer,
    bank: FillerBank,
    rng: random.Random,
    *,
    chat: bool,
) -> FittedPrompt:
    """Build the prompt with exactly `length` tokens; raise `LengthError` if the knobs do not fit."""
    headers, fact_costs = _piece_costs(chapters, tokenizer)
    overhead = frame_overhead(frame, chapters, tokenizer, chat)
    fixed = overhead + sum(headers) + sum(map(sum, fact_costs))
    filler_total = length - fixed
    if filler_total < 0 or 0 < filler_total < bank.min_count:
        raise LengthError(
            f"length {length} is too small: the instructions, questions and {len(chapters)} chapters of facts "
            f"already take {fixed} tokens. Use a length of at least {fixed + bank.min_count} or fewer "
            "questions/chapters"
        )
    plans = _chapter_quotas(filler_total, len(chapters), bank, rng)
    pieces: list[_Piece] = []
    for i, chapter in enumerate(chapters):
        header = chapter.header + "\n" if i == 0 else "\n\n" + chapter.header + "\n"
        pieces.append(_Piece(header, headers[i], False))
        pieces.extend(_interleave(chapter, fact_costs[i], plans[i], bank, rng))
    return _verify(pieces, frame, length, tokenizer, bank, rng, chat=chat)


def _verify(
    pieces: list[_Piece],
    frame: PromptFrame,
    length: int,
    tokenizer: LengthTokenizer,
    bank: FillerBank,
    rng: random.Random,
    *,
    chat: bool,
) -> FittedPrompt:
    for _ in range(MAX_VERIFY_ROUNDS):
        context = "".join(p.text for p in pieces)
        prompt = frame.build(context)
        text = model_text(prompt, tokenizer, chat)
        actual = tokenizer.count_model_input(text)
        if actual == length:
            return _finish(pieces, prompt, text, actual)
        _compensate(pieces, length - actual, bank, rng)
    raise LengthError(
        f"could not reach exactly {length} tokens with tokenizer {tokenizer.name!r} after "
        f"{MAX_VERIFY_ROUNDS} adjustments (last count {actual}); this tokenizer merges across sentence "
        "boundaries unpredictably — please report it"
    )


def _compensate(pieces: list[_Piece], delta: int, bank: FillerBank, rng: random.Random) -> None:
    """Swap one filler sentence for one `delta` tokens longer (or shorter)."""
    fillers = [i for i, p in enumerate(pieces) if p.is_filler]
    rng.shuffle(fillers)
    for i in fillers:
        wanted = pieces[i].tokens + delta
        if wanted in bank.by_count:
            pieces[i] = _Piece(bank.draw(wanted, rng), wanted, True)
            return
    if delta > 0 and delta in bank.by_count and fillers:
        i = fillers[0]
        pieces.insert(i + 1, _Piece(bank.draw(delta, rng), delta, True))
        return
    raise LengthError(f"cannot compensate a {delta:+d}-token difference: the story has no suitable filler")


def _finish(pieces: list[_Piece], prompt: str, text: str, actual: int) -> FittedPrompt:
    offsets = [0]
    for p in pieces:
        offsets.append(offsets[-1] + p.tokens)
    context_tokens = offsets[-1]
    depths = {p.fact: offsets[k] / context_tokens for k, p in enumerate(pieces) if p.fact is not None}
    return FittedPrompt(prompt, text, actual, context_tokens, depths)
