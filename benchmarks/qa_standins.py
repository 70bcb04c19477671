"""Stand-in QA sources of the real datasets' shape, for timing generation on a machine without the data.

Not the datasets: invented sentences (wonderwords' English words in a few sentence frames) in the real
schemas, with the real validation splits' sizes (SQuAD 2.0: 1,204 paragraphs of ~150 tokens with 5
questions each; QuALITY: 115 articles of ~5k tokens (2k-8k), 18 questions each; TOEFL-QA: 198
transcripts of ~750 tokens, 5 questions each). Generation time depends on the number and sizes of the
documents, not on what they say. Prints the environment variables that point the tasks at them.

    python benchmarks/qa_standins.py /tmp/qa-standins
    export LONGTASKS_QA_SOURCE_SQUAD=/tmp/qa-standins/squad ...   # as printed
    python benchmarks/bench_generate.py --tasks qa_squad,qa_quality,qa_toefl
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from wonderwords import RandomWord

FRAMES = [
    "The {a} {n} {v} the {n2} near the {a2} {n3}.",
    "Every {n} that {v} a {n2} was {a} by the end of the {n3}.",
    "Historians describe the {n} as {a}, although the {n2} {v} it often.",
    "In the {a} season, the {n} and the {n2} {v} along the {n3}.",
]


def sentences(rng: random.Random, words: dict[str, list[str]], count: int) -> str:
    out = []
    for _ in range(count):
        frame = rng.choice(FRAMES)
        pick = {k: rng.choice(words[k.rstrip("23")]) for k in ("a", "a2", "n", "n2", "n3", "v")}
        out.append(frame.format(**pick).capitalize())
    return " ".join(out)


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def main(root: Path) -> None:
    rng = random.Random(0)
    generator = RandomWord()
    words = {
        "a": generator.filter(include_categories=["adjectives"])[:2000],
        "n": generator.filter(include_categories=["nouns"])[:4000],
        "v": generator.filter(include_categories=["verbs"])[:2000],
    }
    squad = []
    for i in range(1204):
        context = sentences(rng, words, rng.randint(4, 14))
        for j in range(5):
            span = " ".join(context.split()[j * 3 : j * 3 + 2]).strip(".,")
            squad.append({"id": f"s{i}-{j}", "title": f"t{i}", "context": context, "question": f"Which {j}?",
                          "answers": {"text": [span], "answer_start": [context.index(span)]}})  # fmt: skip
    quality = []
    for i in range(115):
        article = "\n\n".join(sentences(rng, words, 8) for _ in range(rng.randint(16, 64)))
        for j in range(18):
            quality.append({"article": article, "question": f"Question {j} about article {i}?",
                            "question_unique_id": f"q{i}-{j}", "options": ["one", "two", "three", "four"],
                            "gold_label": rng.randint(1, 4)})  # fmt: skip
    toefl = []
    for _ in range(198):
        lines = [sentences(rng, words, 3).lower() for _ in range(rng.randint(10, 26))]
        questions = [f"Question: what {j}? Options: A.one B.two C.three D.four " for j in range(5)]
        toefl.append({"context": "\n".join(lines), "questions": questions, "answer": ["B"] * 5})
    write(root / "squad" / "validation.jsonl", squad)
    write(root / "quality" / "validation.jsonl", quality)
    write(root / "toeflqa.jsonl", toefl)
    for task, name in (("SQUAD", "squad"), ("QUALITY", "quality"), ("TOEFL", "toeflqa.jsonl")):
        print(f"export LONGTASKS_QA_SOURCE_{task}={root / name}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "qa-standins"))
