"""Which questions a QA prompt may ask, and which one sample `index` asks.

A question may be asked when its single-document prompt fits the paper's limit, per tokenizer and chat
mode, estimated from summed piece counts (a document's token count, its questions' twice, the prompt
around them). As in the seed paper, the askable questions (with num_questions > 1: the askable documents,
each with k of its questions) are shuffled once per (task, seed) and sample i asks item i: the questions
of a configuration are distinct until the list is used up, and sample i asks the same question at every
length its document fits. Only a length too short for item i's document moves that sample to another item,
chosen by position so that the first samples of a run still ask distinct questions where enough fit.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from longtasks.families.qa.costs import PoolCosts
from longtasks.families.qa.packing import MIN_PARTIAL
from longtasks.fit import TooShort

Item = tuple[int, tuple[int, ...]]
"""A document and the questions about it that one prompt asks."""


def order_seed(task: str, seed: int) -> int:
    """The seed of a task's question order: independent of the length and of the sample index."""
    digest = hashlib.sha256(f"longtasks|{task}|questions|{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(frozen=True)
class Order:
    """A task's askable items in the order samples ask them, each with the fewest tokens it may take."""

    items: tuple[Item, ...]
    needs: tuple[int, ...]
    fitting: dict[int, list[int]] = field(default_factory=dict, compare=False, repr=False)

    def fits(self, room: int) -> list[int]:
        """Positions (ascending) of the items whose single-document prompt fits `room` tokens."""
        if room not in self.fitting:
            self.fitting[room] = [p for p, need in enumerate(self.needs) if need <= room]
        return self.fitting[room]

    def positions(self, index: int, room: int) -> Iterator[int]:
        """Sample `index`'s item, then the others that fit in the order a sample falls back to them.

        Item index % n when it fits. Otherwise the r-th sample whose item does not fit takes the r-th
        fitting item from the end of the order: the last items belong to the samples generated last (if
        ever), so a run's first samples ask distinct questions as long as enough of them fit."""
        fit = self.fits(room)
        position = index % len(self.items)
        at = bisect.bisect_left(fit, position)
        own = at < len(fit) and fit[at] == position
        misfits_before = position - at  # when it does not fit: its rank among the items that do not
        first = at if own else len(fit) - 1 - misfits_before % len(fit)
        for step in range(len(fit)):
            yield fit[(first + step) % len(fit)]


@dataclass(frozen=True)
class Askable:
    """Documents that can be asked about (k questions within the limit), their eligible questions, the pool
    of distractors, and the question orders drawn from them."""

    base: dict[int, int]
    """Tokens of the prompt around a document and n empty questions, by n."""
    costs: PoolCosts
    docs: tuple[int, ...]
    eligible: dict[int, list[int]]
    distractors: tuple[int, ...]
    least: int = 0
    """Tokens of the shortest single-question, single-document prompt of the pool (within a limit or not)."""
    orders: dict[tuple[str, int, int], Order] = field(default_factory=dict, compare=False, repr=False)

    def estimate(self, doc: int, questions: list[int] | tuple[int, ...]) -> int:
        """Tokens of the prompt with document `doc` alone and these questions (summed piece counts)."""
        asked = sum(self.costs.questions[doc][q] for q in questions)
        return self.base[len(questions)] + 2 * asked + self.costs.header(1) + self.costs.bodies[doc]

    @classmethod
    def make(cls, base: dict[int, int], costs: PoolCosts, limit: int, k: int) -> Askable:
        probe = cls(base, costs, (), {}, ())
        singles = {
            doc: [probe.estimate(doc, [q]) for q in range(len(d.questions))]
            for doc, d in enumerate(costs.pool.documents)
        }
        eligible = {
            doc: [q for q, need in enumerate(needs) if need <= limit] for doc, needs in singles.items()
        }
        return cls(
            base,
            costs,
            tuple(doc for doc, qs in eligible.items() if len(qs) >= k),
            eligible,
            tuple(doc for doc, qs in eligible.items() if qs),
            min((n for needs in singles.values() for n in needs), default=0),
        )

    def _shortest(self, doc: int, questions: list[int], k: int) -> int:
        """Tokens of the prompt with `doc` and its k shortest questions among `questions`."""
        return self.estimate(doc, sorted(questions, key=lambda q: self.costs.questions[doc][q])[:k])

    def check(self, task: str, k: int, limit: int) -> None:
        """ValueError when no document has k questions within the limit, naming what would work."""
        if self.docs:
            return
        most = max((len(qs) for qs in self.eligible.values()), default=0)
        if most == 0:
            raise ValueError(
                f"{task}: no question's single-document prompt fits document_prompt_limit={limit} tokens "
                f"(the shortest takes about {self.least}); raise the limit to at least {self.least}"
            )
        raise ValueError(
            f"{task}: no document has {k} questions within document_prompt_limit={limit} "
            f"(at most {most}); use num_questions <= {most} or raise the limit"
        )

    def order(self, task: str, seed: int, k: int) -> Order:
        """The askable items shuffled once per (task, seed): one question each, or with k > 1 one
        document each with k of its questions drawn once."""
        key = (task, seed, k)
        if key not in self.orders:
            rng = random.Random(order_seed(task, seed))
            if k == 1:
                items: list[Item] = [(doc, (q,)) for doc in sorted(self.docs) for q in self.eligible[doc]]
                rng.shuffle(items)
            else:
                docs = sorted(self.docs)
                rng.shuffle(docs)
                items = [(doc, tuple(sorted(rng.sample(self.eligible[doc], k)))) for doc in docs]
            needs = tuple(
                self.estimate(doc, qs) if k == 1 else self._shortest(doc, self.eligible[doc], k)
                for doc, qs in items
            )
            self.orders[key] = Order(tuple(items), needs)
        return self.orders[key]

    def candidates(self, index: int, room: int, task: str, seed: int, k: int, limit: int) -> Iterator[Item]:
        """Sample `index`'s document and questions within `room` tokens, then the fallbacks in order (for a
        question that cannot be posed, e.g. one whose answer every other document states)."""
        self.check(task, k, limit)
        order = self.order(task, seed, k)
        if not order.fits(room):
            raise TooShort(
                f"the shortest prompt with one of its documents takes about {min(order.needs) + MIN_PARTIAL} tokens"
            )
        for position in order.positions(index, room):
            doc, asked = order.items[position]
            if self.estimate(doc, asked) > room:  # k > 1: the document's shortest k questions fit
                eligible = self.eligible[doc]
                asked = tuple(sorted(sorted(eligible, key=lambda q: (self.estimate(doc, [q]), q))[:k]))
            yield doc, asked
