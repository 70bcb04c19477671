"""Generate samples: a pure function of (task, knobs, seed, index, length, tokenizer, chat)."""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import os
import random
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from longtasks.filler_bank import filler_bank_for
from longtasks.fit import LengthError, fit_prompt
from longtasks.prompt import story_frame
from longtasks.sample import Sample, make_sample_id
from longtasks.tasks import StoryKnobs, StoryTask, get_task
from longtasks.tasks.base import Evidence, WorldTooSmall
from longtasks.tokenizer import LengthTokenizer, load_tokenizer
from longtasks.version import GENERATOR_VERSION
from longtasks.world import RenderedChapter, StoryRenderer, World, simulate_world

MAX_ATTEMPTS = 12


@cache
def _renderer() -> StoryRenderer:
    return StoryRenderer()


def sample_seed(task: str, length: int, seed: int, index: int) -> int:
    """Stable per-sample seed, independent of worker count and of which indices are generated."""
    digest = hashlib.sha256(f"longtasks|{task}|{length}|{seed}|{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _initial_chapters(task: StoryTask, knobs: StoryKnobs, length: int) -> int:
    if knobs.num_chapters:
        return knobs.num_chapters
    return max(task.min_chapters(knobs), length // knobs.chapter_tokens)


@dataclass(frozen=True)
class BuiltSample:
    """A sample with the world and chapters it was made from (for checks and debugging)."""

    sample: Sample
    world: World
    chapters: list[RenderedChapter]


def build_sample(
    task: StoryTask,
    knobs: StoryKnobs,
    length: int,
    seed: int,
    index: int,
    tokenizer: LengthTokenizer,
    chat: bool,
) -> Sample:
    """One sample of exactly `length` tokens."""
    return build_sample_with_world(task, knobs, length, seed, index, tokenizer, chat).sample


def build_sample_with_world(
    task: StoryTask,
    knobs: StoryKnobs,
    length: int,
    seed: int,
    index: int,
    tokenizer: LengthTokenizer,
    chat: bool,
) -> BuiltSample:
    """Simulate, ask, render and fit; fewer chapters are tried when the facts do not fit."""
    num_chapters = _initial_chapters(task, knobs, length)
    last_error: ValueError | None = None
    for attempt in range(MAX_ATTEMPTS):
        rng = random.Random(sample_seed(task.name, length, seed, index) + 7919 * attempt + num_chapters)
        world = simulate_world(num_chapters, rng.getrandbits(63), task.world_config(knobs, num_chapters, rng))
        try:
            asked = task.ask(world, knobs, rng)
        except WorldTooSmall as error:  # redraw the world; the chapter count stays
            last_error = error
            continue
        renderer = _renderer()
        chapters = [renderer.render_chapter(world, chapter, rng) for chapter in world.chapters]
        frame = story_frame(world.protagonist, asked.questions, task.answer_kind, asked.example)
        try:
            fitted = fit_prompt(
                chapters, frame, length, tokenizer, filler_bank_for(tokenizer), rng, chat=chat
            )
        except LengthError as error:
            last_error = error
            fewer = max(task.min_chapters(knobs), int(num_chapters * 0.6))
            if knobs.num_chapters or fewer == num_chapters:
                break
            num_chapters = fewer
            continue
        depths = [_evidence_depth(e, chapters, fitted.fact_depths) for e in asked.evidence]
        sample = Sample(
            id=make_sample_id(task.name, length, seed, index),
            task=task.name,
            length=length,
            input_tokens=fitted.input_tokens,
            prompt=fitted.prompt,
            question="\n".join(asked.questions),
            answer=asked.answer,
            answer_kind=task.answer_kind,
            tokenizer=tokenizer.name,
            tokenizer_revision=tokenizer.revision,
            chat=chat,
            seed=seed,
            index=index,
            knobs=dataclasses.asdict(knobs),
            evidence_chapters=[e.chapter for e in asked.evidence],
            evidence_depths=depths,
            num_chapters=num_chapters,
            generator_version=GENERATOR_VERSION,
        )
        return BuiltSample(sample, world, chapters)
    assert last_error is not None
    raise last_error


def _evidence_depth(
    evidence: Evidence, chapters: list[RenderedChapter], fact_depths: dict[tuple[int, int], float]
) -> float:
    """Relative depth (0 = start of the story, 1 = end) of the sentence stating the evidence, or of
    the chapter's first sentence when the evidence is the chapter as a whole."""
    chapter = chapters[evidence.chapter - 1]
    for j, fact in enumerate(chapter.facts):
        if fact.kind == evidence.kind and fact.value == evidence.value:
            return round(fact_depths[(chapter.number, j)], 6)
    return round(fact_depths[(chapter.number, 0)], 6)


def resolve_tokenizer(tokenizer: str | LengthTokenizer | None) -> LengthTokenizer:
    return tokenizer if isinstance(tokenizer, LengthTokenizer) else load_tokenizer(tokenizer)


def check_request(task: str, length: int, num_samples: int, knobs: Mapping[str, Any] | None) -> StoryKnobs:
    """Validate everything cheap before any work starts (clear errors, nothing written)."""
    spec = get_task(task)
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"length={length!r} must be a positive number of tokens")
    if num_samples < 0:
        raise ValueError(f"num_samples={num_samples} must be zero or more")
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
            samples.append(build_sample(spec, parsed_knobs, length, seed, i, tok, chat))
            advance(1)
        rest = [(task, parsed_knobs, length, seed, i, chat) for i in indices[len(samples) :]]
        if rest:
            # multiprocessing.Pool's context exit terminates the workers, also on an interrupt.
            with multiprocessing.Pool(workers, initializer=_worker_init, initargs=(tok,)) as pool:
                chunk = max(1, len(rest) // (4 * workers))
                for sample in pool.imap(_build_in_worker, rest, chunksize=chunk):
                    samples.append(sample)
                    advance(1)
        return samples
    finally:
        if bar is not None:
            bar.stop()


_worker_tokenizer: LengthTokenizer | None = None


def _worker_init(tokenizer: LengthTokenizer) -> None:
    """Each worker gets the caller's tokenizer object (not a name: it may not be loadable by name)."""
    global _worker_tokenizer
    # The parent decides about interrupts and terminates the pool; workers stop quietly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _worker_tokenizer = tokenizer


def _build_in_worker(args: tuple) -> Sample:
    task, knobs, length, seed, index, chat = args
    assert _worker_tokenizer is not None
    return build_sample(get_task(task), knobs, length, seed, index, _worker_tokenizer, chat)


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
