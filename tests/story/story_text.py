"""Helpers that read a generated prompt back into chapters, for tests that check the text itself."""

from __future__ import annotations

import re

_CHAPTER = re.compile(r"(?:^|\n\n)(Chapter (\d+))\n", re.MULTILINE)


def story_of(prompt: str) -> str:
    start = prompt.index("<story>\n") + len("<story>\n")
    end = prompt.rindex("\n</story>")
    return prompt[start:end]


def chapter_texts(prompt: str, headers: list[str]) -> dict[int, str]:
    """Chapter number -> its text, split at the known headers (in order)."""
    story = story_of(prompt)
    texts: dict[int, str] = {}
    positions = []
    cursor = 0
    for number, header in enumerate(headers, start=1):
        marker = (header + "\n") if number == 1 else ("\n\n" + header + "\n")
        at = story.index(marker, cursor)
        positions.append((number, at, at + len(marker)))
        cursor = at + len(marker)
    for k, (number, _, body_start) in enumerate(positions):
        end = positions[k + 1][1] if k + 1 < len(positions) else len(story)
        texts[number] = story[body_start:end]
    return texts
