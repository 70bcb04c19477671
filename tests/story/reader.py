"""An independent reader: answers every story question from the prompt text alone.

It knows only the public wording (the fact templates in `templates/story/`, read here on their own) and
what names look like; it never sees the simulated world. For each chapter it finds the sentences that
match a fact template: exactly one arrival and one meeting, the purchases in order and the sales. A
confuser that read like a fact would break those counts, so the reader also proves that every answer is
unique in the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

import jinja2

from longtasks.resources import templates_dir
from tests.story.story_text import story_of

_MARK = "\x00"
_SENTENCE_END = re.compile(r"(?<=[.!?]) (?=[A-Z])")
_HEADER = re.compile(r"(?:^|\n\n)Chapter (\d+)\n")
_VALUE = {
    "location": r"(the [a-z]+(?: [a-z]+)* of [A-Z][A-Za-z'-]*(?: [A-Z][A-Za-z'-]*)*)",
    "character": r"([A-Z][A-Za-z'-]+ [A-Z][A-Za-z'-]+)",
    "item": r"([a-z]+ [a-z]+ [a-z]+)",
    "a": r"(?:a|an)",
}
FILES = {
    "location": "location.j2",
    "character": "character.j2",
    "purchase_single": "purchase_single.j2",
    "purchase_first": "purchase_first.j2",
    "purchase_second": "purchase_second.j2",
    "sale": "sale.j2",
}


@cache
def _lines(file: str) -> tuple[tuple[str, ...], ...]:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir() / "story")))
    slots = ["who", "Who", "whom", "their", "location", "character", "item", "a"]
    text = env.get_template(file).render({s: f"{_MARK}{s}{_MARK}" for s in slots})
    return tuple(tuple(line.strip().split(_MARK)) for line in text.splitlines() if line.strip())


@cache
def _patterns(first: str, full: str) -> dict[str, re.Pattern[str]]:
    """One pattern per fact kind, for a protagonist with these names."""
    hero = {
        "who": rf"(?:{re.escape(full)}|{re.escape(first)}|she|he)",
        "Who": rf"(?:{re.escape(full)}|{re.escape(first)}|She|He)",
        "whom": rf"(?:{re.escape(full)}|{re.escape(first)}|her|him)",
        "their": r"(?:her|his)",
    }
    out = {}
    for kind, file in FILES.items():
        options = []
        for pieces in _lines(file):
            parts = [re.escape(p) if i % 2 == 0 else hero.get(p) or _VALUE[p] for i, p in enumerate(pieces)]
            options.append("".join(parts))
        out[kind] = re.compile("|".join(f"(?:{o})" for o in options))
    return out


@dataclass
class ReadChapter:
    location: list[str] = field(default_factory=list)
    character: list[str] = field(default_factory=list)
    purchases: list[tuple[str, str]] = field(default_factory=list)  # (kind, item)
    sales: list[str] = field(default_factory=list)


def read_story(prompt: str) -> tuple[str, list[ReadChapter]]:
    """The protagonist and each chapter's facts, found by matching sentences against the templates."""
    full = re.search(r"It follows (.+?) from place to place", prompt).group(1)
    patterns = _patterns(full.split(" ")[0], full)
    story = story_of(prompt)
    marks = list(_HEADER.finditer(story))
    chapters = []
    for k, mark in enumerate(marks):
        assert int(mark.group(1)) == k + 1
        text = story[mark.end() : marks[k + 1].start() if k + 1 < len(marks) else len(story)]
        chapter = ReadChapter()
        for sentence in _SENTENCE_END.split(text):
            for kind in FILES:
                match = patterns[kind].fullmatch(sentence)
                if match is None:
                    continue
                value = next(v for v in match.groups() if v is not None)
                if kind == "location":
                    chapter.location.append(value)
                elif kind == "character":
                    chapter.character.append(value)
                elif kind == "sale":
                    chapter.sales.append(value)
                else:
                    chapter.purchases.append((kind, value))
        chapters.append(chapter)
    return full, chapters


def answer(prompt: str, question: str) -> object:
    """The answer to the prompt's question(s), from the text alone (asserting that it is unique)."""
    _, chapters = read_story(prompt)
    for number, chapter in enumerate(chapters, start=1):
        assert len(chapter.location) == 1, (number, chapter.location)
        assert len(chapter.character) == 1, (number, chapter.character)
        kinds = [kind for kind, _ in chapter.purchases]
        assert kinds in ([], ["purchase_single"], ["purchase_first", "purchase_second"]), (number, kinds)
    bought = [item for chapter in chapters for _, item in chapter.purchases]
    if question.startswith("In chapter"):
        answers = []
        for number, what in re.findall(r"In chapter (\d+), (where was|whom did|which item did)", question):
            chapter = chapters[int(number) - 1]
            if what == "where was":
                answers.append(chapter.location[0])
            elif what == "whom did":
                answers.append(chapter.character[0])
            else:
                assert len(chapter.purchases) == 1
                answers.append(chapter.purchases[0][1])
        return answers
    if "acquir" in question:
        asked = re.search(r"acquiring the (.+)\?$", question).group(1)
        hops = int(m.group(1)) if (m := re.search(r"acquire (\d+) acquisitions before", question)) else 1
        assert bought.count(asked) == 1
        return bought[bought.index(asked) - hops]
    if "buy nothing" in question:
        return [n for n, chapter in enumerate(chapters, start=1) if not chapter.purchases]
    if "still own" in question:
        owned: list[str] = []
        for chapter in chapters:
            for item in chapter.sales:
                owned.remove(item)
            owned += [item for _, item in chapter.purchases]
        return owned
    raise AssertionError(f"the reader cannot read the question {question!r}")
