"""qa_quality: a multiple-choice question about one long article of QuALITY among other articles."""

from __future__ import annotations

from dataclasses import dataclass, field

from longtasks.families.qa.records import quality_pairs
from longtasks.families.qa.source import default_source
from longtasks.families.qa.task import QAKnobs, QATask

HUB_SOURCE = "tasksource/QuALITY@4892b065e6a40f44fa61bc406df4c35fe91e9290"
"""QuALITY v1.0.1 train/dev as maintained by tasksource: one row per question with the original fields
(question ids, article licence, difficulty); its data files are unchanged since they were uploaded."""


@dataclass(frozen=True)
class QualityKnobs(QAKnobs):
    source: str = field(default_factory=lambda: default_source("qa_quality", HUB_SOURCE))


class QAQuality(QATask[QualityKnobs]):
    name = "qa_quality"
    description = (
        "Answer a multiple-choice question about one numbered long article (QuALITY) among other articles."
    )
    answer_kind = "choices"
    hub_source = HUB_SOURCE
    knobs_type = QualityKnobs
    source_license = "cc-by-4.0"
    split = "validation"
    columns = ("article", "question", "question_unique_id", "options", "gold_label")
    schema = "tasksource/QuALITY (article, question, question_unique_id, options, gold_label 1-4)"
    example = "B"
    read = staticmethod(quality_pairs)
