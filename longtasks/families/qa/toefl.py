"""qa_toefl: a multiple-choice question about one TOEFL listening transcript among other transcripts.

No Hub copy exists: the user gives the seed paper's JSON lines file (a local path or URL), and its
licence is unstated upstream, so `longtasks push` refuses such data without --allow-unlicensed-data."""

from __future__ import annotations

from dataclasses import dataclass, field

from longtasks.families.qa.records import toefl_pairs
from longtasks.families.qa.source import default_source, env_name
from longtasks.families.qa.task import QAKnobs, QATask


@dataclass(frozen=True)
class ToeflKnobs(QAKnobs):
    source: str = field(default_factory=lambda: default_source("qa_toefl", ""))


class QAToefl(QATask[ToeflKnobs]):
    name = "qa_toefl"
    description = (
        "Answer a multiple-choice question about one numbered lecture transcript (TOEFL-QA) among others; "
        "needs the file (--knob qa_toefl.source=PATH_OR_URL); licence unstated upstream: not pushed without "
        "--allow-unlicensed-data."
    )
    answer_kind = "choices"
    knobs_type = ToeflKnobs
    source_license = "unknown"
    redistributable = False
    split = "train"
    columns = ("context", "questions", "answer")
    schema = (
        "TOEFL-QA JSON lines of the seed paper (context, questions with embedded options, answer letters)"
    )
    example = "B"
    no_source = (
        "qa_toefl needs the TOEFL-QA file (no Hub copy exists): get toeflqa.jsonl (the seed paper's JSON lines, "
        "from github.com/lixinze777/LC_VS_RAG; originally github.com/iamyuanchung/TOEFL-QA) and pass "
        f"--knob qa_toefl.source=PATH_OR_URL (or set {env_name('qa_toefl')})"
    )
    read = staticmethod(toefl_pairs)
