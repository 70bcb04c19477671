"""Which questions a QA prompt may ask: those whose single-document prompt fits the paper's limit, per
tokenizer and chat mode, estimated from summed piece counts (a document's token count, its questions'
twice, the prompt around them). Documents are sorted by their shortest such prompt, so the ones that fit a
short length are a prefix of the list."""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

from longtasks.families.qa.costs import PoolCosts
from longtasks.families.qa.packing import MIN_PARTIAL
from longtasks.fit import TooShort


@dataclass(frozen=True)
class Askable:
    """Documents that can be asked about sorted by their shortest single-document prompt, and the distractor pool."""

    base: dict[int, int]
    """Tokens of the prompt around a document and n empty questions, by n."""
    costs: PoolCosts
    docs: tuple[int, ...]
    shortest: tuple[int, ...]
    eligible: dict[int, list[int]]
    distractors: tuple[int, ...]

    def estimate(self, doc: int, questions: list[int]) -> int:
        """Tokens of the prompt with document `doc` alone and these questions (summed piece counts)."""
        asked = sum(self.costs.questions[doc][q] for q in questions)
        return self.base[len(questions)] + 2 * asked + self.costs.header(1) + self.costs.bodies[doc]

    @classmethod
    def make(cls, base: dict[int, int], costs: PoolCosts, limit: int, k: int) -> Askable:
        probe = cls(base, costs, (), (), {}, ())
        eligible = {
            doc: [q for q in range(len(d.questions)) if probe.estimate(doc, [q]) <= limit]
            for doc, d in enumerate(costs.pool.documents)
        }

        def shortest(doc: int) -> int:
            return probe.estimate(doc, sorted(eligible[doc], key=lambda q: costs.questions[doc][q])[:k])

        askable = sorted((shortest(doc), doc) for doc, qs in eligible.items() if len(qs) >= k)
        return cls(
            base,
            costs,
            tuple(doc for _, doc in askable),
            tuple(tokens for tokens, _ in askable),
            eligible,
            tuple(doc for doc, qs in eligible.items() if qs),
        )

    def draw(self, room: int, rng: random.Random, task: str, k: int, limit: int) -> tuple[int, list[int]]:
        """A document that fits `room` tokens and k of its questions (the shortest k if a random k do not)."""
        if not self.docs:
            most = max((len(qs) for qs in self.eligible.values()), default=0)
            raise ValueError(
                f"{task}: no document has {k} questions within document_prompt_limit={limit} "
                f"(at most {most}); use num_questions <= {most} or raise the limit"
            )
        fits = bisect.bisect_right(self.shortest, room)
        if fits == 0:
            raise TooShort(
                f"the shortest prompt with one of its documents takes about {self.shortest[0] + MIN_PARTIAL} tokens"
            )
        doc = self.docs[rng.randrange(fits)] if k > 1 else self._one_question_doc(fits, rng)
        questions = self.eligible[doc]
        asked = sorted(rng.sample(questions, k))
        if self.estimate(doc, asked) > room:
            by_size = sorted(questions, key=lambda q: (self.estimate(doc, [q]), q))
            asked = sorted(by_size[:k])
        return doc, asked

    def _one_question_doc(self, fits: int, rng: random.Random) -> int:
        """With one question per prompt every question is equally likely (as in the paper), not every
        document: a document is drawn with weight equal to its number of eligible questions."""
        weights = [len(self.eligible[d]) for d in self.docs[:fits]]
        return self.docs[:fits][rng.choices(range(fits), weights=weights)[0]]
