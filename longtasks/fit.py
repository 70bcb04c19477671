"""Fit a draft to exactly `length` model-input tokens.

Cheap path: token counts of every piece (section headings, segments, filler sentences) are computed in
batches and summed; pieces are joined at boundaries where the tokenizer's pre-tokeniser cannot merge
across them, so the sum is exact for BPE tokenizers of the GPT/Qwen/Llama-3 family. The final text is
then tokenized once to verify; if a merge still moved the count (other tokenizer families), one filler
sentence is swapped for one of compensating length and the text is verified again.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from longtasks.draft import Draft, Section
from longtasks.filler_bank import FillerSource
from longtasks.prompt import PromptFrame
from longtasks.tokenizer import LengthTokenizer

MAX_VERIFY_ROUNDS = 8


class LengthError(ValueError):
    """The requested length cannot be met with the requested knobs."""


class TooShort(LengthError):
    """The task's fixed content (instructions, questions, facts) does not fit the length."""


@dataclass(frozen=True)
class FittedPrompt:
    prompt: str  # the user message
    model_text: str  # what the model reads: the prompt, chat-wrapped in chat mode
    input_tokens: int
    context_tokens: int
    depths: dict[str, float]  # segment key -> relative depth of its first token in the context


@dataclass
class _Piece:
    text: str
    tokens: int
    is_filler: bool
    key: str | None = None


def model_text(prompt: str, tokenizer: LengthTokenizer, chat: bool) -> str:
    """The exact text whose tokens `length` counts."""
    return tokenizer.chat_wrap(prompt) if chat else prompt


def count_model_text(prompt: str, tokenizer: LengthTokenizer, chat: bool) -> int:
    """Tokens the model reads for the user message `prompt`."""
    return tokenizer.count_model_input(model_text(prompt, tokenizer, chat))


def _heading_text(heading: str, first: bool) -> str:
    return heading + "\n" if first else "\n\n" + heading + "\n"


def _piece_costs(
    sections: Sequence[Section], tokenizer: LengthTokenizer
) -> tuple[list[int], list[list[int]]]:
    """Token cost of each heading and segment as it appears in the joined context."""
    heading_texts = []
    for i, section in enumerate(sections):
        if section.heading is None:
            continue
        # A heading follows the previous section's final sentence: "." + "\n\n" merge into one
        # pre-token, so its marginal cost is measured in that context.
        heading_texts.append(section.heading + "\n" if i == 0 else ".\n\n" + section.heading + "\n")
    segment_texts = [
        seg.text if (j == 0 and section.lead) else section.sep + seg.text
        for section in sections
        for j, seg in enumerate(section.segments)
        if seg.tokens is None
    ]
    counts = tokenizer.count_many(heading_texts + segment_texts + ["."])
    dot = counts[-1]
    heading_counts = iter(c if i == 0 else c - dot for i, c in enumerate(counts[: len(heading_texts)]))
    headings = [next(heading_counts) if s.heading is not None else 0 for s in sections]
    measured = iter(counts[len(heading_texts) : -1])
    segments = [
        [seg.tokens if seg.tokens is not None else next(measured) for seg in s.segments] for s in sections
    ]
    return headings, segments


def frame_overhead(
    frame: PromptFrame, sections: Sequence[Section], tokenizer: LengthTokenizer, chat: bool
) -> int:
    """Tokens the prompt adds around the context (instructions, questions, chat template)."""
    first = sections[0]
    sample_context = (first.heading + "\n" if first.heading is not None else "") + first.segments[0].text
    return count_model_text(frame.build(sample_context), tokenizer, chat) - tokenizer.count(sample_context)


def _section_quotas(total: int, count: int, bank: FillerSource, rng: random.Random) -> list[list[int]]:
    """Share the filler budget among sections (varied sizes) as lists of sentence token counts."""
    weights = [rng.uniform(0.6, 1.4) for _ in range(count)]
    scale = total / sum(weights)
    raw = [int(w * scale) for w in weights]
    raw[-1] += total - sum(raw)
    plans: list[list[int]] = []
    carry = 0
    for i, quota in enumerate(raw):
        quota += carry
        carry = 0
        last = i == count - 1
        plan = bank.split(quota, rng) if quota > 0 else []
        if plan is None and not last:
            carry, plan = quota, []
        elif plan is None:
            plan = _rescue_last(quota, plans, bank, rng)
        plans.append(plan)
    return plans


def _rescue_last(quota: int, plans: list[list[int]], bank: FillerSource, rng: random.Random) -> list[int]:
    """The final quota is not representable (e.g. 1-3 tokens): borrow a sentence from an earlier section."""
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


def _positions(section: Section, movable: int, fillers: int, rng: random.Random) -> list[int]:
    """Filler index before which each movable segment goes (non-decreasing order is the text order)."""
    if section.slots is not None:
        return [min(fillers, max(0, round(s * fillers))) for s in section.slots]
    return sorted(rng.randrange(fillers + 1) for _ in range(movable))


def _interleave(
    section: Section, costs: list[int], fillers: list[int], bank: FillerSource, rng: random.Random
) -> list[_Piece]:
    """The section's segments placed among its filler sentences (see `Section`)."""
    sep = section.sep
    segments = list(zip(section.segments, costs, strict=True))
    pieces: list[_Piece] = []
    if section.lead:
        seg, cost = segments.pop(0)
        pieces.append(_Piece(seg.text, cost, False, seg.key))
    movable = [_Piece(sep + seg.text, cost, False, seg.key) for seg, cost in segments]
    slots = _positions(section, len(movable), len(fillers), rng)
    order = sorted(range(len(movable)), key=lambda k: slots[k])  # stable: equal slots keep segment order
    queue = [(slots[k], movable[k]) for k in order]
    q = 0
    for position in range(len(fillers) + 1):
        while q < len(queue) and queue[q][0] == position:
            pieces.append(queue[q][1])
            q += 1
        if position < len(fillers):
            count = fillers[position]
            avoid = pieces[-1].text if pieces else None
            pieces.append(_Piece(bank.draw(count, rng, avoid=avoid), count, True))
    return pieces


def fit_draft(
    draft: Draft, length: int, tokenizer: LengthTokenizer, rng: random.Random, *, chat: bool
) -> FittedPrompt:
    """The draft's prompt with exactly `length` tokens; `LengthError` if the knobs do not fit."""
    if draft.filler is None:
        return _fit_sized(draft, length, tokenizer, chat=chat)
    sections = draft.sections
    headings, costs = _piece_costs(sections, tokenizer)
    overhead = frame_overhead(draft.frame, sections, tokenizer, chat)
    fixed = overhead + sum(headings) + sum(map(sum, costs))
    filler_total = length - fixed
    bank = draft.filler.source(tokenizer, max(filler_total, 0), rng)
    if filler_total < 0 or 0 < filler_total < bank.min_count:
        raise TooShort(
            f"length {length} is too small: the instructions, questions and the task's content already take "
            f"{fixed} tokens"
        )
    plans = _section_quotas(filler_total, len(sections), bank, rng)
    pieces: list[_Piece] = []
    for i, section in enumerate(sections):
        if section.heading is not None:
            pieces.append(_Piece(_heading_text(section.heading, i == 0), headings[i], False))
        pieces.extend(_interleave(section, costs[i], plans[i], bank, rng))
    _strip_leading_separator(pieces, sections[0], tokenizer, bank, rng)
    return _verify(pieces, draft.frame, length, tokenizer, bank, rng, chat=chat)


def _strip_leading_separator(
    pieces: list[_Piece], first: Section, tokenizer: LengthTokenizer, bank: FillerSource, rng: random.Random
) -> None:
    """A context without a heading must not start with the separator; keep the count exact."""
    head = pieces[0]
    if first.heading is not None or first.lead or not head.text.startswith(first.sep):
        return
    text = head.text[len(first.sep) :]
    tokens = tokenizer.count(text)
    pieces[0] = _Piece(text, tokens, False, head.key)  # no longer a bank sentence: never swapped
    if tokens != head.tokens:
        _compensate(pieces, head.tokens - tokens, bank, rng)


def _verify(
    pieces: list[_Piece],
    frame: PromptFrame,
    length: int,
    tokenizer: LengthTokenizer,
    bank: FillerSource,
    rng: random.Random,
    *,
    chat: bool,
) -> FittedPrompt:
    actual = -1
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


def _compensate(pieces: list[_Piece], delta: int, bank: FillerSource, rng: random.Random) -> None:
    """Swap one filler sentence for one `delta` tokens longer (or shorter)."""
    fillers = [i for i, p in enumerate(pieces) if p.is_filler]
    rng.shuffle(fillers)
    for i in fillers:
        wanted = pieces[i].tokens + delta
        if bank.has(wanted):
            pieces[i] = _Piece(bank.draw(wanted, rng), wanted, True)
            return
    if delta > 0 and bank.has(delta) and fillers:
        i = fillers[0]
        pieces.insert(i + 1, _Piece(bank.draw(delta, rng), delta, True))
        return
    raise LengthError(f"cannot compensate a {delta:+d}-token difference: the context has no suitable filler")


def _finish(pieces: list[_Piece], prompt: str, text: str, actual: int) -> FittedPrompt:
    offsets = [0]
    for p in pieces:
        offsets.append(offsets[-1] + p.tokens)
    context_tokens = offsets[-1]
    depths = {p.key: offsets[k] / context_tokens for k, p in enumerate(pieces) if p.key is not None}
    return FittedPrompt(prompt, text, actual, context_tokens, depths)


def _fit_sized(draft: Draft, length: int, tokenizer: LengthTokenizer, *, chat: bool) -> FittedPrompt:
    """A draft the family sized itself: assemble, verify, and measure segment depths."""
    pieces: list[_Piece] = []
    headings, costs = _piece_costs(draft.sections, tokenizer)
    for i, section in enumerate(draft.sections):
        if section.heading is not None:
            pieces.append(_Piece(_heading_text(section.heading, i == 0), headings[i], False))
        for j, (seg, cost) in enumerate(zip(section.segments, costs[i], strict=True)):
            first_in_context = not pieces
            text = seg.text if (first_in_context or (j == 0 and section.lead)) else section.sep + seg.text
            pieces.append(_Piece(text, cost, False, seg.key))
    prompt = draft.frame.build("".join(p.text for p in pieces))
    text = model_text(prompt, tokenizer, chat)
    actual = tokenizer.count_model_input(text)
    if actual != length:
        raise LengthError(f"the task sized its context to {actual} tokens instead of {length}")
    return _finish(pieces, prompt, text, actual)
