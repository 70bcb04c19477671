"""Fit a draft to exactly `length` model-input tokens.

Cheap path: token counts of every piece (section headings, segments, filler sentences) are computed in
batches and summed; pieces are joined at boundaries where the tokenizer's pre-tokeniser cannot merge
across them, so the sum is exact for BPE tokenizers of the GPT/Qwen/Llama-3 family. SentencePiece-style
(Metaspace) tokenizers split only at spaces, so where text meets without one (a sentence, a heading
line, the segment after it; the frame around the context) the words on either side are counted
together: a heading with the first word after it, and, once the filler is placed, again with the last
word before it, and the frame with the context's real first and last words. The final text is then
tokenized once to verify; if a merge still moved the count (other tokenizer families), one filler
sentence is swapped for one of compensating length (or, when no single swap can, a few are drawn
again) and the text is verified again.
"""

from __future__ import annotations

import gc
import itertools
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

    def remove(self, at: int) -> None:
        del self.texts[at], self.tokens[at], self.filler[at], self.keys[at]


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
    segment_texts = [
        seg.text if (j == 0 and section.lead) else section.sep + seg.text
        for section in sections
        for j, seg in enumerate(section.segments)
        if seg.tokens is None
    ]
    measured = iter(tokenizer.count_many(segment_texts))
    segments = [
        [seg.tokens if seg.tokens is not None else next(measured) for seg in s.segments] for s in sections
    ]
    return heading_costs(sections, tokenizer), segments


_HeadingKey = tuple[str, str, bool]  # the heading's text, the lead segment's first word, first section


def heading_costs(sections: Sequence[Section], tokenizer: LengthTokenizer) -> list[int]:
    """Each section's heading cost (0 without one), as the fitter plans it; remembered per tokenizer
    (headings recur). A family that sizes its content before the draft exists should plan with these.

    A heading follows the previous section's final sentence: "." + "\n\n" merge into one pre-token, so
    its marginal cost is measured after a "." (`_recount_headings` corrects it for the real sentence). A
    lead segment follows the heading line with no space between them: its first word is counted with
    the heading (see `_lead_head`)."""
    keys: list[_HeadingKey] = [
        ("", "", True)
        if s.heading is None
        else (f"{s.heading}\n" if i == 0 else f"\n\n{s.heading}\n", _lead_head(s), i == 0)
        for i, s in enumerate(sections)
    ]
    memo: dict[_HeadingKey, int] = tokenizer.memo.setdefault("fit_heading_costs", {})
    costs = list(map(memo.get, keys))
    if None in costs:
        missing = [key for key in dict.fromkeys(keys) if key not in memo]
        n = len(missing)
        counts = tokenizer.count_many(
            [
                *(("" if first else ".") + text + head for text, head, first in missing),
                *(h for _, h, _ in missing),
                ".",
            ]
        )
        dot = counts[-1]
        if len(memo) + n > _MEMO_SIZE:
            memo.clear()
        for j, key in enumerate(missing):
            memo[key] = counts[j] - counts[n + j] - (0 if key[2] else dot)
        costs = list(map(memo.__getitem__, keys))
    return costs


def _lead_head(section: Section) -> str:
    """The lead segment's text up to its first space ("" without a lead segment).

    The segment itself is counted alone (or by the task), where a SentencePiece-style tokenizer prepends
    "▁" to its first word; after the heading line that word is written without it ("2\nThe" is one
    pre-token). The heading's cost is therefore `count(heading + head) - count(head)`: heading plus
    segment then sum to what they take together. Tokenizers that split at the line break get the same
    heading cost as alone."""
    return _first_word(section.segments[0].text) if section.lead else ""


_MEMO_SIZE = 100_000
"""Entries kept per tokenizer in each table of heading costs, heading shifts and short counts (headings
such as "Chapter 12", the words around them and the frame's edges recur in every sample)."""


def _memo_counts(tokenizer: LengthTokenizer, texts: list[str]) -> list[int]:
    """`tokenizer.count_many(texts)`, remembered per tokenizer (the same texts give the same counts)."""
    memo: dict[str, int] = tokenizer.memo.setdefault("fit_junction_counts", {})
    counts = list(map(memo.get, texts))
    if None in counts:
        missing = list(dict.fromkeys(t for t, c in zip(texts, counts, strict=True) if c is None))
        if len(memo) + len(missing) > _MEMO_SIZE:
            memo.clear()
        memo.update(zip(missing, tokenizer.count_many(missing), strict=True))
        counts = list(map(memo.__getitem__, texts))
    return counts


def frame_overhead(
    frame: PromptFrame, sections: Sequence[Section], tokenizer: LengthTokenizer, chat: bool
) -> int:
    """Tokens the prompt adds around the context (instructions, questions, chat template)."""
    sample_context = _sample_context(sections)
    return count_model_text(frame.build(sample_context), tokenizer, chat) - tokenizer.count(sample_context)


def _sample_context(sections: Sequence[Section]) -> str:
    """The context `frame_overhead` measures the frame around: the first heading and segment."""
    first = sections[0]
    return (first.heading + "\n" if first.heading is not None else "") + first.segments[0].text


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
    heading_at: list[int] = []
    for i, section in enumerate(sections):
        if section.heading is not None:
            heading_at.append(len(pieces.texts))
            pieces.add(_heading_text(section.heading, i == 0), headings[i], False)
        _interleave(pieces, section, costs[i], plans[i], bank, rng)
    # Counted next to stand-ins before the filler was placed: count again next to the real neighbours.
    delta = _recount_headings(pieces, heading_at[1:], tokenizer)
    _strip_leading_separator(pieces, sections[0], tokenizer, bank, rng)
    delta += _frame_edges_delta(pieces, draft.frame, sections, tokenizer)
    if delta:
        _compensate(pieces, delta, bank, rng)
    return _verify(pieces, draft.frame, length, tokenizer, bank, rng, chat=chat)


def _recount_headings(pieces: _Pieces, at: list[int], tokenizer: LengthTokenizer) -> int:
    """Count the headings at `at` (never the first piece) after the word really before them; return the
    tokens the filler must change by.

    `_piece_costs` counts a heading after a bare ".": the sentence really before it is known only once
    filler is placed, and a SentencePiece-style tokenizer merges its last word with the heading
    ("▁water." is one token alone, "▁water" + ".\n" before a line break). Only the pre-token across the
    junction changes: the last word with the heading's first word. Tokenizers that split at "." + line
    break get the same costs. The change is remembered per pair of words (both recur)."""
    if not at:
        return 0
    texts = pieces.texts
    tails = [t[t.rfind(" ") + 1 :] for t in [texts[k - 1] for k in at]]  # `_last_word`, inlined
    pairs = list(zip(tails, [_heading_front(texts, k) for k in at], strict=True))
    shifts: dict[tuple[str, str], int] = tokenizer.memo.setdefault("fit_heading_shifts", {})
    changes = list(map(shifts.get, pairs))
    if None in changes:
        missing = [pair for pair in dict.fromkeys(pairs) if pair not in shifts]
        n = len(missing)
        counts = tokenizer.count_many(
            [*(t + f for t, f in missing), *(t for t, _ in missing), *("." + f for _, f in missing), "."]
        )
        dot = counts[-1]
        if len(shifts) + n > _MEMO_SIZE:
            shifts.clear()
        for j, pair in enumerate(missing):
            shifts[pair] = (counts[j] - counts[n + j]) - (counts[2 * n + j] - dot)
        changes = list(map(shifts.__getitem__, pairs))
    if any(changes):
        tokens = pieces.tokens
        for k, change in zip(at, changes, strict=True):
            tokens[k] += change
    return -sum(changes)


def _heading_front(texts: list[str], k: int) -> str:
    """The heading at `k` up to its first space (a heading without one: up to the next piece's)."""
    text = texts[k]
    cut = text.find(" ")
    if cut >= 0:
        return text[:cut]
    return text + _first_word(texts[k + 1]) if k + 1 < len(texts) else text


def _frame_edges_delta(
    pieces: _Pieces, frame: PromptFrame, sections: Sequence[Section], tokenizer: LengthTokenizer
) -> int:
    """Tokens the filler must change by because the frame's text meets other words than in
    `frame_overhead`'s sample (the context's real first and last words: a SentencePiece-style
    tokenizer merges "▁on." + "\n</story>" into "▁on.\n" + ...)."""
    sample = _sample_context(sections)
    prefix_tail, suffix_head = _last_word(frame.prefix), _first_word(frame.suffix)
    firsts = [_first_word(pieces.texts[0]), _first_word(sample)]
    lasts = [_last_word(pieces.texts[-1]), _last_word(sample)]
    texts = [prefix_tail + f for f in firsts] + firsts + [last + suffix_head for last in lasts] + lasts
    real_start, sample_start, real_first, sample_first, real_end, sample_end, real_last, sample_last = (
        _memo_counts(tokenizer, texts)
    )
    extra = (real_start - real_first) - (sample_start - sample_first)
    extra += (real_end - real_last) - (sample_end - sample_last)
    return -extra


def _first_word(text: str) -> str:
    """`text` up to its first space: what a Metaspace tokenizer may merge with the text before it."""
    cut = text.find(" ")
    return text if cut < 0 else text[:cut]


def _last_word(text: str) -> str:
    """`text` from its last space on (the space excluded): what may merge with the text after it."""
    return text[text.rfind(" ") + 1 :]


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
    """Swap one filler sentence for one `delta` tokens longer (or shorter); when no single swap can,
    draw a few filler sentences again (`_redraw_several`)."""
    fillers = [i for i, is_filler in enumerate(pieces.filler) if is_filler]
    rng.shuffle(fillers)
    # Sentences that a piece without a leading space follows (a heading) come last: that piece was
    # counted after their last word (`_recount_headings`), so swapping them could move its count.
    spaced = [*map(str.startswith, pieces.texts[1:], itertools.repeat(" ")), True]  # spaced[i]: after i
    if not all(spaced):
        fillers = [i for i in fillers if spaced[i]] + [i for i in fillers if not spaced[i]]
    for i in fillers:
        wanted = pieces.tokens[i] + delta
        if bank.has(wanted):
            pieces.texts[i], pieces.tokens[i], pieces.keys[i] = bank.draw(wanted, rng), wanted, None
            return
    if delta > 0 and bank.has(delta) and fillers:
        pieces.insert(fillers[0] + 1, bank.draw(delta, rng), delta, True)
        return
    if _redraw_several(pieces, fillers, delta, bank, rng):
        return
    raise LengthError(
        f"cannot compensate a {delta:+d}-token difference: no set of the context's {len(fillers)} filler "
        f"sentences ({sum(pieces.tokens[i] for i in fillers)} tokens) can be drawn again to absorb it; a "
        "longer length leaves more filler to adjust"
    )


MAX_SPLITS = 16
"""Sets of filler sentences `_redraw_several` tries to draw again (each larger than the last)."""


def _redraw_several(
    pieces: _Pieces, fillers: list[int], delta: int, bank: FillerSource, rng: random.Random
) -> bool:
    """Replace the first few of `fillers` (in random order) by sentences totalling `delta` tokens more.

    The set grows one sentence at a time until the bank can make the new total exactly (as few, as many
    or no sentences: e.g. -10 tokens when every sentence is within 2 tokens of the shortest; -200 when
    a long context's headings all merge with the word before them). The new sentences take the old
    ones' places; extra ones go after the last, and missing ones leave a gap."""
    total = 0
    splits = 0
    for n, i in enumerate(fillers, start=1):
        total += pieces.tokens[i]
        if total + delta < 0:
            continue
        if splits == MAX_SPLITS:
            return False
        splits += 1
        counts = bank.split(total + delta, rng)
        if counts is None:
            continue
        try:
            texts = [bank.draw(c, rng) for c in counts]
        except LookupError:  # a per-sample pool ran out of sentences of a count: try a larger set
            continue
        _replace_fillers(pieces, sorted(fillers[:n]), texts, counts)
        return True
    return False


def _replace_fillers(pieces: _Pieces, places: list[int], texts: list[str], counts: list[int]) -> None:
    """Put the new filler sentences at `places` (ascending), the rest after the last place; remove the
    sentences at the places left over."""
    for i, text, count in zip(places, texts, counts, strict=False):
        pieces.texts[i], pieces.tokens[i], pieces.keys[i] = text, count, None
    used = min(len(places), len(texts))
    for at, (text, count) in enumerate(zip(texts[used:], counts[used:], strict=True), start=places[-1] + 1):
        pieces.insert(at, text, count, True)
    for i in reversed(places[used:]):
        pieces.remove(i)


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
