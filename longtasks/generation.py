"""Generate samples: a pure function of (task, knobs, seed, index, length, tokenizer, chat)."""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import os
import random
import signal
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from longtasks.draft import Draft
from longtasks.fit import LengthError, TooShort, fit_draft
from longtasks.registry import get_task
from longtasks.sample import Sample, make_sample_id
from longtasks.task import BuildContext, Knobs, Redraw, Task
from longtasks.tokenizer import LengthTokenizer, load_tokenizer
from longtasks.version import GENERATOR_VERSION

MAX_ATTEMPTS = 12
"""Draws a sample may take before it fails."""

HINT_ATTEMPTS = 3
"""Draws each checked sample may take at a suggested shortest length. Fewer than MAX_ATTEMPTS, so a run's later
samples have draws to spare there (checking with all 12 suggested lengths where 1 sample in 20 still failed)."""


class SampleError(ValueError):
    """A sample after the first cannot be built with these settings (the first one could): the message names
    the task, length and sample, for a run that stops part-way."""


def sample_seed(task: str, length: int, seed: int, index: int) -> int:
    """Stable per-sample seed, independent of worker count and of which indices are generated."""
    digest = hashlib.sha256(f"longtasks|{task}|{length}|{seed}|{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(frozen=True)
class BuiltSample:
    """A sample with the draft it was fitted from (the family's truth is `draft.truth`)."""

    sample: Sample
    draft: Draft


def build_sample(
    task: Task[Any],
    knobs: Knobs,
    length: int,
    seed: int,
    index: int,
    tokenizer: LengthTokenizer,
    chat: bool,
    attempts: int = MAX_ATTEMPTS,
) -> Sample:
    """One sample of exactly `length` tokens."""
    return build_sample_with_draft(task, knobs, length, seed, index, tokenizer, chat, attempts).sample


def build_sample_with_draft(
    task: Task[Any],
    knobs: Knobs,
    length: int,
    seed: int,
    index: int,
    tokenizer: LengthTokenizer,
    chat: bool,
    attempts: int = MAX_ATTEMPTS,
) -> BuiltSample:
    """Build and fit; a new draw when the task asks for one, a smaller scale when the content does not fit."""
    scale = task.initial_scale(knobs, length)
    context = BuildContext(length, tokenizer, chat, index, seed)
    last_error: ValueError | None = None
    too_short: TooShort | None = None  # reported first: "use a longer length" is what the user can act on
    for attempt in range(attempts):
        rng = random.Random(sample_seed(task.name, length, seed, index) + 7919 * attempt + scale)
        try:
            draft = task.build(knobs, scale, rng, context)
        except (Redraw, TooShort) as error:  # draw again at the same scale (a draw's fixed parts may fit)
            last_error = error
            too_short = error if isinstance(error, TooShort) else too_short
            continue
        try:
            fitted = fit_draft(draft, length, tokenizer, rng, chat=chat)
        except LengthError as error:
            last_error = error
            too_short = error if isinstance(error, TooShort) else too_short
            smaller = task.smaller_scale(knobs, scale)
            # At the smallest scale, draw again: near the shortest workable length whether a draw fits depends
            # on it (names, words, which facts are asked, the filler's last sentences), and one sample of many
            # failing part-way through a run loses the run.
            scale = scale if smaller is None else smaller
            continue
        sample = Sample(
            id=make_sample_id(task.name, length, seed, index),
            task=task.name,
            family=task.family,
            length=length,
            input_tokens=fitted.input_tokens,
            prompt=fitted.prompt,
            question=draft.question,
            answer=draft.answer,
            answer_kind=task.answer_kind,
            tokenizer=tokenizer.name,
            tokenizer_revision=tokenizer.revision,
            chat=chat,
            seed=seed,
            index=index,
            knobs=dataclasses.asdict(knobs),
            evidence_depths=[round(fitted.depths[key], 6) for key in draft.evidence],
            generator_version=GENERATOR_VERSION,
            meta=dataclasses.asdict(draft.meta) if draft.meta is not None else {},
        )
        return BuiltSample(sample, draft)
    assert last_error is not None
    raise too_short or last_error


HINT_SAMPLES = 20
"""Samples a suggested shortest length is checked on (near it, whether a sample fits depends on its draw)."""


def build_later_sample(
    task: Task[Any], knobs: Knobs, length: int, seed: int, index: int, tokenizer: LengthTokenizer, chat: bool
) -> Sample:
    """`build_sample` for a sample after the first: a failure names the task, length and sample."""
    try:
        return build_sample(task, knobs, length, seed, index, tokenizer, chat)
    except (LengthError, Redraw) as error:
        raise SampleError(
            f"{task.name} at {length} tokens, sample {index}: {error}. The first samples fit, this one did not "
            "after every redraw: the length is too close to the shortest one these knobs allow; use a longer "
            "length (or lighter knobs)"
        ) from error


def build_first_sample(
    task: Task[Any], knobs: Knobs, length: int, seed: int, index: int, tokenizer: LengthTokenizer, chat: bool
) -> Sample:
    """`build_sample`, but a failure names the task and length, and one that a longer length may cure (the
    content does not fit, or the tokenizer leaves the fitter too little filler to land on the exact count)
    comes with the shortest length that works, found by building samples (not estimated)."""
    try:
        return build_sample(task, knobs, length, seed, index, tokenizer, chat)
    except LengthError as error:
        shortest = shortest_working_length(task, knobs, length, seed, tokenizer, chat)
        advice = (
            f"the shortest length that works with these knobs is {shortest} (checked on samples 0-{HINT_SAMPLES - 1}, "
            f"each fitting within {HINT_ATTEMPTS} of the {MAX_ATTEMPTS} draws a sample may take, so a long run's "
            "samples have draws to spare; it can be below the count above: a sample whose content does not fit draws "
            "again)"
            if shortest is not None
            else "no length up to 1M works with these knobs"
        )
        raise type(error)(f"{task.name} at {length} tokens: {error}; {advice}") from error
    except Redraw as error:
        raise Redraw(f"{task.name} at {length} tokens, sample {index}: {error}") from error


def shortest_working_length(
    task: Task[Any], knobs: Knobs, failing: int, seed: int, tokenizer: LengthTokenizer, chat: bool
) -> int | None:
    """The smallest length above `failing` at which the first samples all build within HINT_ATTEMPTS draws
    (search, then verified): with all draws, a length where most draws fail passed 20 samples and failed later."""

    def works(length: int) -> bool:
        try:
            for index in range(HINT_SAMPLES):
                build_sample(task, knobs, length, seed, index, tokenizer, chat, HINT_ATTEMPTS)
        except (LengthError, Redraw):
            return False
        return True

    low, high = failing, max(failing + 1, 64)
    while not works(high):
        low, high = high, int(high * 1.5) + 1
        if high > 1 << 20:
            return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if works(middle) else (middle, high)
    return high


def resolve_tokenizer(tokenizer: str | LengthTokenizer | None) -> LengthTokenizer:
    return tokenizer if isinstance(tokenizer, LengthTokenizer) else load_tokenizer(tokenizer)


def check_request(task: str, length: int, num_samples: int, knobs: Mapping[str, Any] | None) -> Knobs:
    """Validate everything cheap before any work starts (clear errors, nothing written)."""
    spec = get_task(task)
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length={length!r} must be a positive number of tokens")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples={num_samples!r} must be at least 1 (samples per task and length)")
    return spec.make_knobs(knobs)


def generate_samples(
    task: str,
    length: int,
    num_samples: int,
    *,
    seed: int = 0,
    tokenizer: str | LengthTokenizer | None = None,
    chat: bool = False,
    knobs: Mapping[str, Any] | None = None,
    start: int = 0,
    workers: int = 1,
    progress: bool | Callable[[int], None] = False,
) -> list[Sample]:
    """Samples `start … start+num_samples-1` of (task, length, seed, knobs) in order.

    `progress` may be True (a rich progress bar) or a callback receiving the number of samples just
    finished. With `workers > 1` samples are built in separate processes; results are identical.
    """
    parsed_knobs = check_request(task, length, num_samples, knobs)
    spec = get_task(task)
    tok = resolve_tokenizer(tokenizer)
    if chat and not tok.has_chat_template:
        raise ValueError(
            f"chat mode is on but tokenizer {tok.name!r} has no chat template; turn chat mode off"
        )
    indices = list(range(start, start + num_samples))
    advance, bar = _progress_hook(progress, len(indices), f"{task} @ {length}")
    try:
        samples = []
        # The first sample is built here even with workers: an impossible length fails before any pool starts.
        for i in indices if workers <= 1 else indices[:1]:
            build = build_first_sample if i == indices[0] else build_later_sample
            samples.append(build(spec, parsed_knobs, length, seed, i, tok, chat))
            advance(1)
        rest = [(task, parsed_knobs, length, seed, i, chat) for i in indices[len(samples) :]]
        if rest:
            # multiprocessing.Pool's context exit terminates the workers, also on an interrupt.
            with ExitStack() as stack:
                with _interrupts_held():
                    pool = stack.enter_context(
                        multiprocessing.Pool(workers, initializer=_worker_init, initargs=(tok,))
                    )
                chunk = max(1, len(rest) // (4 * workers))
                for sample in pool.imap(_build_in_worker, rest, chunksize=chunk):
                    samples.append(sample)
                    advance(1)
        return samples
    finally:
        if bar is not None:
            bar.stop()


_worker_tokenizer: LengthTokenizer | None = None
_INTERRUPTS = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM while the pool forks its workers; they arrive right after. A KeyboardInterrupt
    raised from a signal handler inside fork's hooks (logging releases its lock there) is swallowed: the run
    then ignores the interrupt, or leaves that lock held and hangs at exit (seen about 1 run in 10)."""
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX: nothing to hold
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _worker_init(tokenizer: LengthTokenizer) -> None:
    """Each worker gets the caller's tokenizer object (not a name: it may not be loadable by name)."""
    global _worker_tokenizer
    # The parent decides about interrupts and terminates the pool; workers stop quietly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):  # forked while the parent held them (`_interrupts_held`)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _INTERRUPTS)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _worker_tokenizer = tokenizer


def _build_in_worker(args: tuple) -> Sample:
    task, knobs, length, seed, index, chat = args
    assert _worker_tokenizer is not None
    return build_later_sample(get_task(task), knobs, length, seed, index, _worker_tokenizer, chat)


def _progress_hook(progress: bool | Callable[[int], None], total: int, label: str):
    if callable(progress):
        return progress, None
    if not progress:
        return (lambda _n: None), None
    from rich.progress import Progress

    bar = Progress()
    bar.start()
    task_id = bar.add_task(label, total=total)
    return (lambda n: bar.advance(task_id, n)), bar
