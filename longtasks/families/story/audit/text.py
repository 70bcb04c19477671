"""A story prompt read back as chapters and sentences, and how much of it repeats."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_HEADER = re.compile(r"(?:^|\n\n)Chapter (\d+)\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def story_of(prompt: str) -> str:
    """The story between the prompt's <story> tags."""
    start = prompt.index("<story>\n") + len("<story>\n")
    return prompt[start : prompt.rindex("\n</story>")]


def chapters_of(prompt: str) -> list[str]:
    """Each chapter's text (without its heading), in order."""
    story = story_of(prompt)
    marks = list(_HEADER.finditer(story))
    return [
        story[m.end() : marks[k + 1].start() if k + 1 < len(marks) else len(story)]
        for k, m in enumerate(marks)
    ]


def sentences_of(text: str) -> list[str]:
    """Sentences: split after '.', '!' or '?' followed by a capital."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


@dataclass(frozen=True)
class Repeats:
    """How much a prompt's story repeats itself."""

    sentences: int
    repeated_share: float  # 1 - distinct / all sentences of the story
    within_chapters: int  # sentences that repeat one earlier in the same chapter
    chapters_with_repeats: int


def repeats(prompt: str) -> Repeats:
    chapters = [sentences_of(text) for text in chapters_of(prompt)]
    every = [s for chapter in chapters for s in chapter]
    within = [len(chapter) - len(set(chapter)) for chapter in chapters]
    share = 1 - len(set(every)) / len(every) if every else 0.0
    return Repeats(len(every), share, sum(within), sum(1 for w in within if w))


def most_repeated(prompt: str, top: int = 5) -> list[tuple[str, int]]:
    """The sentences a prompt repeats most (for reports)."""
    counts = Counter(s for text in chapters_of(prompt) for s in sentences_of(text))
    return [(s, n) for s, n in counts.most_common(top) if n > 1]
