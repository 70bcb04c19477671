"""Turn a chapter's state into fact sentences, worded by the jinja2 templates in `templates/story/`.

Each template file holds one paraphrase per line. Rendering thousands of chapters through
`Template.render` would cost ~10 µs a sentence, so each file is rendered ONCE at load time with
marker values in place of its variables, and the result is split into literal pieces and slots;
a sentence is then a plain string join. The wording still lives only in the templates.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jinja2

from longtasks.families.story.world.entities import indefinite_article
from longtasks.families.story.world.simulator import Chapter, World
from longtasks.resources import templates_dir

_MARK = "\x00"
_HERO_SLOTS = frozenset({"who", "Who", "whom", "their"})
# kind -> (template file, the slot that carries the fact, extra slots allowed)
_FACT_FILES: dict[str, tuple[str, str, frozenset[str]]] = {
    "location": ("location.j2", "location", frozenset()),
    "character": ("character.j2", "character", frozenset()),
    "purchase_single": ("purchase_single.j2", "item", frozenset({"a"})),
    "purchase_first": ("purchase_first.j2", "item", frozenset({"a"})),
    "purchase_second": ("purchase_second.j2", "item", frozenset({"a"})),
    "sale": ("sale.j2", "item", frozenset()),
}
# Sentences that name a person, place or item of the story in a role that answers no question.
_MENTION_FILES: dict[str, tuple[str, str]] = {
    "person": ("mention_person.j2", "other"),
    "place": ("mention_place.j2", "place"),
    "item": ("mention_item.j2", "item"),
}
_LOWERCASE_VALUES = frozenset({"location", "item", "place"})  # would need capitalising at a sentence start
_MIN_PARAPHRASES = 8


class FactSentence(NamedTuple):
    """One sentence stating one askable fact; `value` occurs in `text` literally."""

    text: str
    kind: str  # "location" | "character" | "purchase" | "sale"
    value: str


@dataclass(frozen=True)
class RenderedChapter:
    """A chapter's header and its fact sentences in story order (location, character, purchases, sales)."""

    number: int
    header: str
    facts: tuple[FactSentence, ...]


# A compiled paraphrase: literal text and slot names alternating, starting and ending with literal text.
_Pieces = tuple[str, ...]


def _compile_file(
    env: jinja2.Environment, name: str, value_slot: str, extra: frozenset[str], needs_hero: bool = True
) -> list[_Pieces]:
    allowed = _HERO_SLOTS | extra | {value_slot}
    template = env.get_template(name)
    rendered = template.render({slot: f"{_MARK}{slot}{_MARK}" for slot in allowed})
    compiled: list[_Pieces] = []
    for line_number, line in enumerate(rendered.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        where = f"template {name!r} paraphrase {line_number} ({line.replace(_MARK, '')!r})"
        pieces = tuple(line.split(_MARK))
        slots = pieces[1::2]
        if slots.count(value_slot) != 1:
            raise ValueError(f"{where}: must use {{{{ {value_slot} }}}} exactly once")
        if needs_hero and not _HERO_SLOTS & set(slots):
            raise ValueError(f"{where}: must refer to the protagonist with who, Who or whom")
        if value_slot in _LOWERCASE_VALUES and pieces[0] == "" and pieces[1] == value_slot:
            raise ValueError(f"{where}: must not start with {{{{ {value_slot} }}}} (it is lowercase)")
        if not pieces[-1].endswith((".", "!", "?")):
            raise ValueError(f"{where}: must end with '.', '!' or '?'")
        if "{" in line or "}" in line:
            raise ValueError(f"{where}: must not contain braces")
        compiled.append(pieces)
    if len(compiled) < _MIN_PARAPHRASES:
        raise ValueError(
            f"template {name!r} has {len(compiled)} paraphrases; at least {_MIN_PARAPHRASES} needed"
        )
    return compiled


def _fill(pieces: _Pieces, values: dict[str, str]) -> str:
    parts = list(pieces)
    for i in range(1, len(parts), 2):
        parts[i] = values[parts[i]]
    return "".join(parts)


class StoryRenderer:
    """Renders chapters; build once and reuse (templates are compiled in `__init__`)."""

    def __init__(self, story_dir: Path | None = None) -> None:
        folder = story_dir or templates_dir() / "story"
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(folder)),
            undefined=jinja2.StrictUndefined,  # unknown variables are errors, not empty text
            autoescape=False,
            keep_trailing_newline=False,
        )
        self._paraphrases = {
            kind: _compile_file(env, file, slot, extra) for kind, (file, slot, extra) in _FACT_FILES.items()
        }
        self._mentions = {
            kind: _compile_file(env, file, slot, frozenset(), needs_hero=False)
            for kind, (file, slot) in _MENTION_FILES.items()
        }
        self._last_told: tuple[tuple[str, str] | None, dict[str, _Told]] = (None, {})
        header = env.get_template("header.j2").render(number=f"{_MARK}number{_MARK}").strip()
        self._header = tuple(header.split(_MARK))
        if self._header[1::2] != ("number",):
            raise ValueError("template 'header.j2' must use {{ number }} exactly once")

    def paraphrases(self, kind: str) -> int:
        """How many paraphrases the templates offer for `kind` (see `_FACT_FILES`)."""
        return len(self._paraphrases[kind])

    def render_chapter(
        self, world: World, chapter: Chapter, rng: random.Random, seen: set[str] | None = None
    ) -> RenderedChapter:
        """Fact sentences for `chapter`; the paraphrase and name-vs-pronoun choices come from `rng`.
        `seen`: sentences the story has told already; a revisited place is then told in other words."""
        told = self._told_for(world)

        def sentence(kind: str, values: dict[str, str]) -> str:
            return told[kind].tell(values, rng)

        arrival = _fresh(lambda: sentence("location", {"location": chapter.location}), seen)
        facts = [
            FactSentence(arrival, "location", chapter.location),
            FactSentence(
                sentence("character", {"character": chapter.character}), "character", chapter.character
            ),
        ]
        purchases = chapter.purchases
        if len(purchases) > 2:
            raise ValueError(
                f"chapter {chapter.number} has {len(purchases)} purchases; the story supports 0-2"
            )
        kinds = ("purchase_single",) if len(purchases) == 1 else ("purchase_first", "purchase_second")
        for kind, item in zip(kinds, purchases, strict=False):
            facts.append(
                FactSentence(sentence(kind, {"item": item, "a": indefinite_article(item)}), "purchase", item)
            )
        for item in chapter.sales:
            facts.append(FactSentence(sentence("sale", {"item": item}), "sale", item))
        header = _fill(self._header, {"number": str(chapter.number)})
        return RenderedChapter(number=chapter.number, header=header, facts=tuple(facts))

    def render_mention(
        self, world: World, kind: str, value: str, rng: random.Random, seen: set[str] | None = None
    ) -> str:
        """A sentence naming `value` (a person, place or item of the story, see `_MENTION_FILES`) in a
        role that answers no question; not one in `seen` (the story's sentences so far) if avoidable."""
        values, told = {_MENTION_FILES[kind][1]: value}, self._told_for(world)["mention:" + kind]
        return _fresh(lambda: told.tell(values, rng), seen)

    def render_mentions(
        self,
        world: World,
        mentions: Iterable[tuple[str, str]],
        rng: random.Random,
        seen: set[str] | None = None,
    ) -> list[str]:
        """`render_mention` for many (kind, value) pairs at once."""
        told = self._told_for(world)
        out = []
        for kind, value in mentions:
            values, table = {_MENTION_FILES[kind][1]: value}, told["mention:" + kind]
            text = table.tell(values, rng)
            if seen is not None:
                for _ in range(_RETELLS):
                    if text not in seen:
                        break
                    text = table.tell(values, rng)
                seen.add(text)
            out.append(text)
        return out

    def _told_for(self, world: World) -> dict[str, _Told]:
        """Every paraphrase with this world's protagonist filled in (kept for the last world told)."""
        key = (world.protagonist, world.pronoun)
        if self._last_told[0] != key:
            forms = _hero_forms(world)
            tables = {**self._paraphrases, **{"mention:" + k: v for k, v in self._mentions.items()}}
            self._last_told = (key, {kind: _Told(paraphrases, forms) for kind, paraphrases in tables.items()})
        return self._last_told[1]


_RETELLS = 6  # tries to word a sentence differently from every earlier one


def _fresh(tell: Callable[[], str], seen: set[str] | None) -> str:
    """A sentence from `tell` that is not in `seen` (after a few tries, whatever it gives), recorded."""
    text = tell()
    if seen is None:
        return text
    for _ in range(_RETELLS):
        if text not in seen:
            break
        text = tell()
    seen.add(text)
    return text


def _hero_forms(world: World) -> tuple[dict[str, str], ...]:
    """How a sentence may refer to the protagonist: by pronoun, first name or full name."""
    first, full, subject = world.protagonist_first_name, world.protagonist, world.pronoun
    obj, poss = ("her", "her") if subject == "she" else ("him", "his")
    by_pronoun = {"who": subject, "Who": subject.capitalize(), "whom": obj, "their": poss}
    by_first = {"who": first, "Who": first, "whom": first, "their": poss}
    by_full = {"who": full, "Who": full, "whom": full, "their": poss}
    return by_pronoun, by_first, by_full


class _Told:
    """The paraphrases of one kind for one protagonist, as format strings with the protagonist filled in
    (made on first use: a short story tells few of them)."""

    def __init__(self, paraphrases: list[_Pieces], forms: tuple[dict[str, str], ...]) -> None:
        self._paraphrases = paraphrases
        self._forms = forms
        self._made: dict[tuple[int, int], str] = {}

    def tell(self, values: dict[str, str], rng: random.Random) -> str:
        """One paraphrase, at random; half the sentences say "she"/"he", the rest mostly use the first
        name, sometimes the full name."""
        roll = rng.random()
        key = (int(rng.random() * len(self._paraphrases)), 0 if roll < 0.5 else 1 if roll < 0.85 else 2)
        made = self._made.get(key)
        if made is None:
            pieces, hero = self._paraphrases[key[0]], self._forms[key[1]]
            parts = list(pieces)
            for i in range(1, len(parts), 2):
                parts[i] = hero.get(pieces[i]) or "{" + pieces[i] + "}"
            made = self._made[key] = "".join(parts)
        return made.format_map(values)
