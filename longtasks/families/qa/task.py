"""The QA tasks' shared build: questions about one numbered document hidden among distractor documents of
the same dataset, the prompt sized to the exact length (`packing.py`), gold answers from the dataset."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, TypeVar

from longtasks.depth import parse_depth_mode, target_depths
from longtasks.draft import Draft, Section, Segment
from longtasks.families.qa.askable import Askable
from longtasks.families.qa.costs import SEPARATOR, PoolCosts, pool_costs
from longtasks.families.qa.packing import MIN_PARTIAL, NoExactFill, arrange
from longtasks.families.qa.records import Pool, Question, SchemaError, build_pool, check_columns
from longtasks.families.qa.source import Source, SourceError, load_rows, parse_source
from longtasks.fit import frame_overhead
from longtasks.prompt import PromptFrame, answer_format, frame_from_template, render_snippet, yaml_templates
from longtasks.task import BuildContext, Knobs, Redraw, Task
from longtasks.tokenizer import LengthTokenizer

PAPER_PROMPT_LIMIT = 8172 - 64
"""The seed paper's filter: a question is used only if its single-document prompt fits 8172 tokens minus
its 64-token template reserve, so the same questions are usable at every length from 8k up."""


@dataclass(frozen=True)
class QAKnobs(Knobs):
    """num_questions: questions about the answer's document per prompt (paper: 1; only documents with that
    many valid questions are asked about). depth: where the answer's document starts: 'uniform' (random),
    'stratified' or comma-separated depths in [0, 1]. document_prompt_limit: the longest single-document
    prompt (instructions, question, the answer's document) a question may need, in tokens (paper: 8108).
    source: where the documents come from: owner/name@commit (Hub, from the local cache), a local file or
    folder, or an http(s) URL; the default is the task's pinned Hub dataset."""

    num_questions: int = 1
    depth: str = "uniform"
    document_prompt_limit: int = PAPER_PROMPT_LIMIT
    source: str = ""

    def validate(self) -> None:
        if not 1 <= self.num_questions <= 50:
            raise ValueError(f"num_questions={self.num_questions} must be within 1..50")
        parse_depth_mode(self.depth)
        if self.document_prompt_limit < 256:
            raise ValueError(
                f"document_prompt_limit={self.document_prompt_limit} must be at least 256 tokens"
            )
        if self.source:
            parse_source("", self.source)


@dataclass(frozen=True)
class QAMeta:
    """The exact source (name, commit or "local"/"url", hash of what was read), the asked questions' ids
    in the source, the answer's document number, the document count and the cut document (0: none)."""

    source: str
    source_revision: str
    source_sha256: str
    question_ids: list[str]
    document: int
    num_documents: int
    cut_document: int


K = TypeVar("K", bound=QAKnobs)
MAX_PASSED_OVER = 16
"""Questions a sample passes over (every other document states their answer) before it gives up."""
ITEMS_TRIED = 4
"""Items of the question order a sample tries when its own leaves no exact fill."""
DRAWS_PER_ITEM = 3
"""Draws (distractor orders) each of those items gets before the next is tried."""
_POOLS: dict[tuple[str, str, str, str], Pool] = {}


def _depth(mode: str, rng: random.Random, index: int) -> float:
    """One answer document per prompt: 'uniform' and 'stratified' draw its depth at random; a list of
    depths is cycled across samples (sample i gets depth i mod n), as story multi-hop does, so every listed
    depth gets its share of the samples."""
    parsed = parse_depth_mode(mode)
    if isinstance(parsed, list):
        return parsed[index % len(parsed)]
    return target_depths("uniform", 1, rng)[0]


def _text(entry: str, **values: Any) -> str:
    return render_snippet("qa", yaml_templates("qa", "text.yaml")[entry], **values)


@cache
def _notes(kind: str) -> tuple[str, ...]:
    return tuple(yaml_templates("qa", "text.yaml")["notes"][kind])


class QATask(Task[K]):
    """A QA task: a dataset reader plus the shared build. Subclasses set the class attributes."""

    family = "qa"
    gen_budget = 256  # a short phrase or a few letters after a short explanation
    meta_type = QAMeta
    split: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]
    schema: ClassVar[str]
    example: ClassVar[str]
    """The answer-format example for one question."""
    hub_source: ClassVar[str | None] = None
    """The pinned Hub dataset the task reads by default (owner/name@commit); None when it has none."""
    no_source: ClassVar[str] = ""
    """The error when the task has no default source and none is given."""

    @staticmethod
    def read(rows: list[dict[str, Any]]) -> list[tuple[str, Question]]:
        raise NotImplementedError

    def answer_of(self, question: Question) -> Any:
        return question.answer

    def answer_bearing(self, pool: Pool, questions: list[Question]) -> set[int]:
        """Documents (other than the asked one) that also state a gold answer: never distractors."""
        return set()

    # --- data ---------------------------------------------------------------------------------------

    def load(self, knobs: QAKnobs) -> tuple[Source, Pool]:
        """The source the knobs name and its pool of documents (read once per process)."""
        if not knobs.source:
            raise SourceError(
                self.no_source or f"{self.name}: no source given; use --knob {self.name}.source=..."
            )
        source = parse_source(self.name, knobs.source)
        key = (self.name, source.kind, source.location, source.pin)
        if key not in _POOLS:
            dataset = load_rows(self.name, source, self.split)
            check_columns(self.name, dataset.column_names, self.columns, self.schema)
            try:
                pool = build_pool(self.read(dataset.select_columns(list(self.columns)).to_list()))
            except SchemaError as error:
                raise SchemaError(f"{self.name}: source {source.location!r}: {error}") from None
            if len(pool.documents) < 2:
                raise SourceError(
                    f"{self.name}: source {source.location!r} has {len(pool.documents)} document(s) with a valid "
                    "question; at least two are needed (one to ask about, others to fill the length)"
                )
            _POOLS[key] = pool
        return source, _POOLS[key]

    # --- prompt -------------------------------------------------------------------------------------

    def frame(self, questions: list[str], number: int) -> PromptFrame:
        count = len(questions)
        example = (
            self.example if count == 1 else "\n".join(f"answer to question {i + 1}" for i in range(count))
        )
        if self.answer_kind == "choices" and count > 1:
            example = "\n".join(("B", "AC", "D")[i % 3] for i in range(count))
        return frame_from_template(
            "qa",
            "prompt.j2",
            intro=_text("intro", count=count),
            heading=_text("heading", count=count, number=number),
            questions=questions,
            notes=_notes(self.answer_kind),
            answer_format=answer_format(self.answer_kind, example, count=count),
        )

    def overhead(self, frame: PromptFrame, tokenizer: LengthTokenizer, chat: bool) -> int:
        probe = (Section(None, (Segment("Document 1:\nText."),), lead=True),)
        return frame_overhead(frame, probe, tokenizer, chat)

    # --- which questions can be asked ---------------------------------------------------------------

    def askable(self, knobs: QAKnobs, pool: Pool, costs: PoolCosts, context: BuildContext) -> Askable:
        """Questions within the single-document limit (per tokenizer, chat mode and knobs; cached)."""
        key = f"qa_usable:{pool.sha256}:{self.name}:{context.chat}:{knobs.num_questions}:{knobs.document_prompt_limit}"
        memo = context.tokenizer.memo
        if key not in memo:
            sizes = {1, knobs.num_questions}
            base = {n: self.overhead(self.frame([""] * n, 1), context.tokenizer, context.chat) for n in sizes}
            memo[key] = Askable.make(base, costs, knobs.document_prompt_limit, knobs.num_questions)
        return memo[key]

    def posed(
        self, knobs: QAKnobs, pool: Pool, askable: Askable, context: BuildContext
    ) -> Iterator[tuple[int, list[Question], list[int]]]:
        """Sample `context.index`'s document, questions and distractors (never a document that states a
        gold answer), then the next items of the order to fall back to. A question whose answer every other
        document states is passed over; Redraw naming that cause when MAX_PASSED_OVER in a row are."""
        candidates = askable.candidates(
            context.index, context.length - MIN_PARTIAL, self.name, context.seed,
            knobs.num_questions, knobs.document_prompt_limit,
        )  # fmt: skip
        passed_over: list[str] = []
        yielded = False
        for gold, asked in candidates:
            questions = [pool.documents[gold].questions[q] for q in asked]
            bearing = self.answer_bearing(pool, questions)
            distractors = [d for d in askable.distractors if d != gold and d not in bearing]
            if distractors:
                yielded = True
                yield gold, questions, distractors
            else:
                passed_over += [q.id for q in questions]
            if len(passed_over) >= MAX_PASSED_OVER:
                break
        if yielded or not passed_over:  # the caller reports why the items it was given did not fit
            return
        others = (
            f" (and of the {len(passed_over) - 1} questions tried after it)" if len(passed_over) > 1 else ""
        )
        raise Redraw(
            f"{self.name}: every other document of the source states a gold answer of question "
            f"{passed_over[0]!r}{others}, so no distractor is left; the source needs documents that do not "
            "contain the answers"
        )

    # --- build --------------------------------------------------------------------------------------

    def build(self, knobs: K, scale: int, rng: random.Random, context: BuildContext) -> Draft:
        """Sample `context.index`'s item of the question order at exactly the length. When its document
        leaves no exact fill (e.g. fewer tokens than a cut document needs), after DRAWS_PER_ITEM draws the
        next item of the order is tried, up to ITEMS_TRIED items: another draw alone would leave the same
        document in the same place."""
        source, pool = self.load(knobs)
        costs = pool_costs(context.tokenizer, pool)
        askable = self.askable(knobs, pool, costs, context)
        failure: NoExactFill | None = None
        for gold, questions, distractors in itertools.islice(
            self.posed(knobs, pool, askable, context), ITEMS_TRIED
        ):
            for _ in range(DRAWS_PER_ITEM):
                try:
                    return self._draft(knobs, source, pool, costs, gold, questions, distractors, rng, context)
                except NoExactFill as error:
                    failure = error
        assert failure is not None  # `posed` yields at least one item or raises
        raise failure

    def _draft(
        self,
        knobs: K,
        source: Source,
        pool: Pool,
        costs: PoolCosts,
        gold: int,
        questions: list[Question],
        distractors: list[int],
        rng: random.Random,
        context: BuildContext,
    ) -> Draft:
        tokenizer, length = context.tokenizer, context.length
        texts = [q.text for q in questions]
        depth = _depth(knobs.depth, rng, context.index)
        frames: dict[int, PromptFrame] = {}

        def frame_for(number: int) -> PromptFrame:
            if number not in frames:
                frames[number] = self.frame(texts, number)
            return frames[number]

        arranged = arrange(
            costs, gold, distractors, depth, length, frame_for,
            lambda frame: self.overhead(frame, tokenizer, context.chat), tokenizer, context.chat, rng,
        )  # fmt: skip
        number = arranged.gold + 1
        segments = tuple(
            Segment(text, "answer_document" if i == arranged.gold else None, tokens)
            for i, (text, tokens) in enumerate(zip(arranged.pieces, arranged.tokens, strict=True))
        )
        heading = _text("heading", count=len(texts), number=number)
        return Draft(
            frame=frame_for(number),
            sections=(Section(None, segments, lead=True, sep=SEPARATOR),),
            filler=None,
            question="\n".join(
                [heading, *(texts if len(texts) == 1 else (f"{i}. {t}" for i, t in enumerate(texts, 1)))]
            ),
            answer=[self.answer_of(q) for q in questions],
            evidence=("answer_document",),
            meta=QAMeta(
                source=source.location if source.kind == "hub" else knobs.source.strip(),
                source_revision=source.pin,
                source_sha256=pool.sha256,
                question_ids=[q.id for q in questions],
                document=number,
                num_documents=len(arranged.pieces),
                cut_document=0 if arranged.partial is None else arranged.partial + 1,
            ),
        )
