"""Fit a draft to exactly `length` model-input tokens.

Cheap path: token counts of every piece (section headings, segments, filler sentences) are computed in
batches and summed; pieces are joined at boundaries where the tokenizer's pre-tokeniser cannot merge
across them, so the sum is exact for BPE tokenizers of the GPT/Qwen/Llama-3 family. The final text is
then tokenized once to verify; if a merge still moved the count (other tokenizer families), one filler
sentence is swapped for one of compensating length and the text is verified again.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

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


class _Pieces:
    """The context as parallel lists (one entry per heading, segment or filler sentence): texts, token
    counts, whether each is a filler sentence, and segment keys (cheaper than an object per piece)."""

    __slots__ = ("filler", "keys", "texts", "tokens")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.tokens: list[int] = []
        self.filler: list[bool] = []
        self.keys: list[str | None] = []

    def add(self, text: str, tokens: int, is_filler: bool, key: str | None = None) -> None:
        self.texts.append(text)
        self.tokens.append(tokens)
        self.filler.append(is_filler)
        self.keys.append(key)

    def insert(self, at: int, text: str, tokens: int, is_filler: bool, key: str | None = None) -> None:
        self.texts.insert(at, text)
        self.tokens.insert(at, tokens)
        self.filler.insert(at, is_filler)
        self.keys.insert(at, key)


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
    counts = tokenizer.count_many([*segment_texts, "."])
    dot = counts[-1]
    heading_counts = iter(
        c if i == 0 else c - dot for i, c in enumerate(_heading_counts(tokenizer, heading_texts))
    )
    headings = [next(heading_counts) if s.heading is not None else 0 for s in sections]
    measured = iter(counts[:-1])
    segments = [
        [seg.tokens if seg.tokens is not None else next(measured) for seg in s.segments] for s in sections
    ]
    return headings, segments


_HEADING_MEMO = 100_000
"""Heading counts kept per tokenizer (headings such as "Chapter 12" recur in every sample)."""


def _heading_counts(tokenizer: LengthTokenizer, texts: list[str]) -> list[int]:
    """`tokenizer.count_many(texts)`, remembered per tokenizer (the same texts give the same counts)."""
    memo: dict[str, int] = tokenizer.memo.setdefault("fit_heading_counts", {})
    missing = list(dict.fromkeys(t for t in texts if t not in memo))
    if missing:
        if len(memo) + len(missing) > _HEADING_MEMO:
            memo.clear()
        memo.update(zip(missing, tokenizer.count_many(missing), strict=True))
    return [memo[t] for t in texts]


def frame_overhead(
    frame: PromptFrame, sections: Sequence[Section], tokenizer: LengthTokenizer, chat: bool
) -> int:
    """Tokens the prompt adds around the context (instructions, questions, chat template)."""
    first = sections[0]
    sample_context = (first.heading + "\n" if first.heading is not None else "") + first.segments[0].text
    return count_model_text(frame.build(sample_context), tokenizer, chat) - tokenizer.count(sample_context)


_UNIFORM_WIDTH = 1.4 - 0.6  # what `random.uniform(0.6, 1.4)` multiplies `random()` by


def _section_quotas(total: int, count: int, bank: FillerSource, rng: random.Random) -> list[list[int]]:
    """Share the filler budget among sections (varied sizes) as lists of sentence token counts."""
    random = rng.random
    weights = [0.6 + _UNIFORM_WIDTH * random() for _ in range(count)]  # rng.uniform(0.6, 1.4), inlined
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
    return sorted(_randbelow(rng, fillers + 1, movable))


def _randbelow(rng: random.Random, n: int, times: int) -> list[int]:
    """`[rng.randrange(n) for _ in range(times)]`, drawing the very same bits (`Random._randbelow`)."""
    getrandbits = rng.getrandbits
    k = n.bit_length()
    out = []
    for _ in range(times):
        r = getrandbits(k)
        while r >= n:
            r = getrandbits(k)
        out.append(r)
    return out


def _interleave(
    pieces: _Pieces,
    section: Section,
    costs: list[int],
    fillers: list[int],
    bank: FillerSource,
    rng: random.Random,
) -> None:
    """Add the section's segments placed among its filler sentences (see `Section`) to `pieces`."""
    texts, tokens, filler, keys = pieces.texts, pieces.tokens, pieces.filler, pieces.keys
    start = len(texts)
    sep = section.sep
    segments = section.segments
    if len(costs) != len(segments):
        raise ValueError(f"{len(costs)} costs for {len(segments)} segments")
    first = 0
    if section.lead:
        seg = segments[0]
        texts.append(seg.text)
        tokens.append(costs[0])
        filler.append(False)
        keys.append(seg.key)
        first = 1
    movable = len(segments) - first
    count = len(fillers)
    slots = _positions(section, movable, count, rng)
    # Equal slots keep segment order (a stable sort); random slots come sorted already.
    order = range(movable) if section.slots is None else sorted(range(movable), key=slots.__getitem__)
    draw = bank.draw
    q = 0
    for position in range(count + 1):
        while q < movable and slots[order[q]] == position:
            k = order[q] + first
            seg = segments[k]
            texts.append(sep + seg.text)
            tokens.append(costs[k])
            filler.append(False)
            keys.append(seg.key)
            q += 1
        if position < count:
            size = fillers[position]
            texts.append(draw(size, rng, avoid=texts[-1] if len(texts) > start else None))
            tokens.append(size)
            filler.append(True)
            keys.append(None)


def fit_draft(
    draft: Draft, length: int, tokenizer: LengthTokenizer, rng: random.Random, *, chat: bool
) -> FittedPrompt:
    """The draft's prompt with exactly `length` tokens; `LengthError` if the knobs do not fit.

    The cyclic garbage collector is paused meanwhile (and restored after): a long draft holds tens of
    thousands of small objects that all stay alive until the sample is done, which the collector would
    traverse again and again (at 128k tokens ~20 times a sample) to free nothing. What the sample leaves
    behind is freed by reference counting as before. A plain try/finally, not a context manager: the
    latter's exit allocates after the collector is back on, which starts a collection at once."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _fit_draft(draft, length, tokenizer, rng, chat=chat)
    finally:
        if enabled:
            gc.enable()


def _fit_draft(
    draft: Draft, length: int, tokenizer: LengthTokenizer, rng: random.Random, *, chat: bool
) -> FittedPrompt:
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
    pieces = _Pieces()
    for i, section in enumerate(sections):
        if section.heading is not None:
            pieces.add(_heading_text(section.heading, i == 0), headings[i], False)
        _interleave(pieces, section, costs[i], plans[i], bank, rng)
    _strip_leading_separator(pieces, sections[0], tokenizer, bank, rng)
    return _verify(pieces, draft.frame, length, tokenizer, bank, rng, chat=chat)


def _strip_leading_separator(
    pieces: _Pieces, first: Section, tokenizer: LengthTokenizer, bank: FillerSource, rng: random.Random
) -> None:
    """A context without a heading must not start with the separator; keep the count exact."""
    head, head_tokens = pieces.texts[0], pieces.tokens[0]
    if first.heading is not None or first.lead or not head.startswith(first.sep):
        return
    text = head[len(first.sep) :]
    tokens = tokenizer.count(text)
    # No longer a bank sentence: never swapped.
    pieces.texts[0], pieces.tokens[0], pieces.filler[0] = text, tokens, False
    if tokens != head_tokens:
        _compensate(pieces, head_tokens - tokens, bank, rng)


def _verify(
    pieces: _Pieces,
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
        context = "".join(pieces.texts)
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


def _compensate(pieces: _Pieces, delta: int, bank: FillerSource, rng: random.Random) -> None:
    """Swap one filler sentence for one `delta` tokens longer (or shorter)."""
    fillers = [i for i, is_filler in enumerate(pieces.filler) if is_filler]
    rng.shuffle(fillers)
    for i in fillers:
        wanted = pieces.tokens[i] + delta
        if bank.has(wanted):
            pieces.texts[i], pieces.tokens[i], pieces.keys[i] = bank.draw(wanted, rng), wanted, None
            return
    if delta > 0 and bank.has(delta) and fillers:
        pieces.insert(fillers[0] + 1, bank.draw(delta, rng), delta, True)
        return
    raise LengthError(f"cannot compensate a {delta:+d}-token difference: the context has no suitable filler")


def _finish(pieces: _Pieces, prompt: str, text: str, actual: int) -> FittedPrompt:
    offsets = list(accumulate(pieces.tokens, initial=0))
    context_tokens = offsets[-1]
    depths = {key: offsets[k] / context_tokens for k, key in enumerate(pieces.keys) if key is not None}
    return FittedPrompt(prompt, text, actual, context_tokens, depths)


def _fit_sized(draft: Draft, length: int, tokenizer: LengthTokenizer, *, chat: bool) -> FittedPrompt:
    """A draft the family sized itself: assemble, verify, and measure segment depths."""
    pieces = _Pieces()
    headings, costs = _piece_costs(draft.sections, tokenizer)
    for i, section in enumerate(draft.sections):
        if section.heading is not None:
            pieces.add(_heading_text(section.heading, i == 0), headings[i], False)
        for j, (seg, cost) in enumerate(zip(section.segments, costs[i], strict=True)):
            first_in_context = not pieces.texts
            text = seg.text if (first_in_context or (j == 0 and section.lead)) else section.sep + seg.text
            pieces.add(text, cost, False, seg.key)
    prompt = draft.frame.build("".join(pieces.texts))
    text = model_text(prompt, tokenizer, chat)
    actual = tokenizer.count_model_input(text)
    if actual != length:
        raise LengthError(f"the task sized its context to {actual} tokens instead of {length}")
    return _finish(pieces, prompt, text, actual)
