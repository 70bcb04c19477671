"""qa_squad: a question about one Wikipedia paragraph of SQuAD 2.0 among other paragraphs; token F1."""

from __future__ import annotations

from dataclasses import dataclass, field

from longtasks.families.qa.records import Pool, Question, squad_pairs
from longtasks.families.qa.source import default_source
from longtasks.families.qa.task import QAKnobs, QATask
from longtasks.scoring.token_f1 import normalize_f1

HUB_SOURCE = "rajpurkar/squad_v2@80596c4f2b9ffcd716039dfc7e564c4e491802ec"
"""SQuAD 2.0 on the Hub at the commit that converted it to parquet ("Convert dataset to Parquet (#6)")."""
_NORMALIZED: dict[str, tuple[str, ...]] = {}


@dataclass(frozen=True)
class SquadKnobs(QAKnobs):
    source: str = field(default_factory=lambda: default_source("qa_squad", HUB_SOURCE))


class QASquad(QATask[SquadKnobs]):
    name = "qa_squad"
    description = (
        "Answer a question about one numbered Wikipedia paragraph (SQuAD 2.0) among other paragraphs."
    )
    answer_kind = "token_f1"
    hub_source = HUB_SOURCE
    knobs_type = SquadKnobs
    source_license = "cc-by-sa-4.0"
    split = "validation"
    columns = ("id", "context", "question", "answers")
    schema = "rajpurkar/squad_v2 (id, context, question, answers {text, answer_start})"
    example = "short answer copied from the document"
    read = staticmethod(squad_pairs)

    def answer_of(self, question: Question) -> list[str]:
        return list(question.answer)

    def answer_bearing(self, pool: Pool, questions: list[Question]) -> set[int]:
        """Paragraphs that contain a gold answer (after normalisation) are never distractors: a model
        answering from the wrong paragraph must not score."""
        if pool.sha256 not in _NORMALIZED:
            _NORMALIZED[pool.sha256] = tuple(f" {normalize_f1(d.text)} " for d in pool.documents)
        texts = _NORMALIZED[pool.sha256]
        answers = {f" {normalize_f1(a)} " for q in questions for a in q.answer}
        return {i for i, text in enumerate(texts) if any(a in text for a in answers)}
