"""Scenery that agrees with its chapter: each chapter has a scene (its place's setting, a time of day, a
weather), and only sentences written for that setting, time and weather are told in it.

The wording is `templates/story/scenery.yaml`: clause groups tagged with the times, weathers and place
kinds they fit. This module turns it into a fixed corpus of sentences (single clauses, plus pairs of
clauses from different groups that share a scene) and into pools of sentence ids per scene; it knows no
tokenizer. Everything is a pure function of the YAML file, built once per process.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from longtasks.families.story.world.entities import LOCATION_KINDS
from longtasks.prompt import render_snippet, yaml_templates

_SEED = 20_250_415  # fixed: the corpus is part of the generator's definition, not of a sample's seed
_PAIRS_PER_SCENE = 60  # joined two-clause sentences made for each (setting, time, weather)
_SKY_PAIRS_PER_SCENE = 200
_INTERLUDE_PAIRS = 1500
_TALK_PAIRS = 500
_HERO_PAIRS_PER_SCENE = 40
_JOINS = (", and ", "; ", ", while ", ", and ")
_STOPWORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "from",
        "with",
        "as",
        "was",
        "were",
        "had",
        "its",
        "their",
        "his",
        "her",
        "one",
        "who",
        "that",
        "there",
        "this",
        "into",
        "over",
        "under",
        "after",
        "before",
        "then",
        "than",
        "every",
        "some",
        "all",
        "any",
        "no",
        "not",
        "it",
        "she",
        "he",
        "they",
        "them",
        "both",
        "each",
        "other",
    ]
)
PRONOUNS = ("she", "he")
_HERO_FORMS = {"she": ("she", "She", "her", "her"), "he": ("he", "He", "him", "his")}


@dataclass(frozen=True)
class Scene:
    """Where and when a chapter happens: its place kind, that kind's setting, a time of day, a weather."""

    kind: str
    setting: str
    time: str
    weather: str
    indoor: bool = False  # the sky is then seen "outside"


@dataclass(frozen=True)
class _Clause:
    text: str
    group: int
    when: frozenset[str]
    weather: frozenset[str]
    where: frozenset[str] | None  # place kinds (places) or settings (hero); None = all
    parts: tuple[str, ...]  # the subjects, predicates and lines it is made of

    def fits(self, time: str, weather: str, where: str) -> bool:
        return time in self.when and weather in self.weather and (self.where is None or where in self.where)


def place_kind(location: str) -> str:
    """The kind of a place named "the <kind> of <Town>"."""
    if not location.startswith("the ") or " of " not in location:
        raise ValueError(f"location {location!r} is not of the form 'the <kind> of <Town>'")
    return location[4:].split(" of ", 1)[0]


class SceneryCorpus:
    """Sentences (each with a leading space, as they follow another sentence) and pools of their ids."""

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        data = data if data is not None else yaml_templates("story", "scenery.yaml")
        self.times: tuple[str, ...] = tuple(data["times"])
        self.weathers: tuple[str, ...] = tuple(data["weathers"])
        self.setting_of: dict[str, str] = {}
        for setting, kinds in data["settings"].items():
            for kind in kinds:
                if kind in self.setting_of:
                    raise ValueError(f"scenery.yaml: place kind {kind!r} is in two settings")
                self.setting_of[kind] = setting
        missing = sorted(set(LOCATION_KINDS) - set(self.setting_of))
        unknown = sorted(set(self.setting_of) - set(LOCATION_KINDS))
        if missing or unknown:
            raise ValueError(
                f"scenery.yaml settings: kinds without a setting {missing}, unknown kinds {unknown}"
            )
        self.kind_times: dict[str, tuple[str, ...]] = {
            kind: self._known(times, self.times, "time") for kind, times in data.get("kind_times", {}).items()
        }
        self.texts: list[str] = []
        self.parts: list[frozenset[int]] = []  # per sentence: ids of the clause parts it uses
        self._part_ids: dict[str, int] = {}
        self._ids: dict[str, int] = {}
        self._entries: dict[str, list[tuple[int, _Clause]]] = {}
        self._index: dict[str, list[tuple[int, int, frozenset[str] | None, int]]] = {}
        rng = random.Random(_SEED)
        self.indoor_kinds = frozenset(
            self._known(data.get("indoor", ()), tuple(self.setting_of), "place kind")
        )
        sky = self._clauses(data["sky"], None)
        sky_pairs = self._pairs(sky, rng, _SKY_PAIRS_PER_SCENE, per_scene=True)
        self._add("sky", sky + sky_pairs)
        self._add("sky:in", [replace(c, text="outside, " + c.text) for c in sky + sky_pairs])
        for setting in data["settings"]:
            clauses = self._clauses(data["places"][setting], set(data["settings"][setting]), "kinds")
            self._add(
                f"place:{setting}", clauses + self._pairs(clauses, rng, _PAIRS_PER_SCENE, per_scene=True)
            )
        hero = self._clauses(data["hero"], set(data["settings"]), "settings")
        for pronoun in PRONOUNS:
            who, cap, whom, their = _HERO_FORMS[pronoun]
            forms = {"who": who, "Who": cap, "whom": whom, "their": their}
            told = [
                replace(c, text=render_snippet("story", c.text, **forms), parts=(*c.parts, pronoun))
                for c in hero
            ]
            self._add(
                f"hero:{pronoun}", told + self._pairs(told, rng, _HERO_PAIRS_PER_SCENE, True, other=sky)
            )
        talk = self._clauses(data["talk"], None)
        self._add("talk", talk + self._pairs(talk, rng, _TALK_PAIRS, False, other=talk))
        self._interludes = self._clauses(data["interludes"], None)
        pairs = self._pairs(self._interludes, rng, _INTERLUDE_PAIRS, per_scene=False)
        self.interludes = list(dict.fromkeys(_sentence(c.text) for c in self._interludes + pairs))
        self._pools: dict[tuple[str, ...], tuple[int, ...]] = {}

    def _known(self, values: Iterable[str], allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
        values = tuple(values)
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ValueError(f"scenery.yaml: unknown {what}(s) {bad}; known: {list(allowed)}")
        return values

    def _clauses(
        self, groups: list[dict[str, Any]], where_allowed: set[str] | None, where_key: str = ""
    ) -> list[_Clause]:
        clauses = []
        for number, group in enumerate(groups):
            when = frozenset(self._known(group.get("when", self.times), self.times, "time"))
            weather = frozenset(self._known(group.get("weather", self.weathers), self.weathers, "weather"))
            where = group.get(where_key) if where_key else None
            if where is not None:
                bad = sorted(set(where) - (where_allowed or set()))
                if bad:
                    raise ValueError(
                        f"scenery.yaml: group {group} names {where_key} {bad} outside its section"
                    )
                where = frozenset(where)
            texts = [(line, (line,)) for line in group.get("lines", [])]
            texts += [
                (f"{s} {p}", (s, p)) for s in group.get("subjects", []) for p in group.get("predicates", [])
            ]
            if not texts:
                raise ValueError(f"scenery.yaml: group {group} has neither lines nor subjects x predicates")
            echoing = [t for t, _ in texts if echoes(t)]
            if echoing:
                raise ValueError(f"scenery.yaml: {echoing[:3]} repeat a word; reword the group")
            clauses += [_Clause(t.strip(), number, when, weather, where, parts) for t, parts in texts]
        return clauses

    def _pairs(
        self,
        clauses: list[_Clause],
        rng: random.Random,
        count: int,
        per_scene: bool,
        other: list[_Clause] | None = None,
    ) -> list[_Clause]:
        """Two clauses of different groups that share a scene (and a place kind), joined into one
        sentence: `count` tries for every (time, weather), or `count` tries in all. With `other`, the
        second clause comes from there (e.g. the protagonist, then the sky)."""
        scenes = [(t, w) for t in self.times for w in self.weathers] if per_scene else [(None, None)]
        made: list[_Clause] = []
        for time, weather in scenes:
            first = [c for c in clauses if time is None or (time in c.when and weather in c.weather)]
            second = (
                first
                if other is None
                else [c for c in other if time is None or (time in c.when and weather in c.weather)]
            )
            if not first or not second:
                continue
            for _ in range(count):
                a, b = first[int(rng.random() * len(first))], second[int(rng.random() * len(second))]
                where = _meet(a.where, b.where)
                if a is b or (other is None and a.group == b.group) or where == frozenset():
                    continue
                join = _JOINS[int(rng.random() * len(_JOINS))]
                if _stems(a.text) & _stems(b.text) or (_stems(a.text) | _stems(b.text)) & _stems(join):
                    continue
                text = a.text + join + b.text
                made.append(
                    _Clause(text, -1, a.when & b.when, a.weather & b.weather, where, a.parts + b.parts)
                )
        return made

    def _add(self, category: str, clauses: list[_Clause]) -> None:
        entries = self._entries.setdefault(category, [])
        for clause in clauses:
            text = _sentence(clause.text)
            if text in self._ids:
                continue
            self._ids[text] = len(self.texts)
            self.texts.append(text)
            self.parts.append(
                frozenset(self._part_ids.setdefault(p, len(self._part_ids)) for p in clause.parts)
            )
            entries.append((self._ids[text], clause))
            mask = sum(
                1 << (t * len(self.weathers) + w)
                for t, time in enumerate(self.times)
                for w, weather in enumerate(self.weathers)
                if time in clause.when and weather in clause.weather
            )
            self._index.setdefault(category, []).append((self._ids[text], mask, clause.where, clause.group))

    def pool(
        self, category: str, time: str, weather: str, where: str = "", single: str = ""
    ) -> tuple[int, ...]:
        """Ids of the sentences of `category` ("sky", "sky:in" (seen from inside), "place:<setting>",
        "hero:<pronoun>", "talk") that
        fit the time, weather and place kind (or setting, for hero lines); only one-clause sentences
        when `single` is set (short enough to open a chapter)."""
        key = (category, time, weather, where, single)
        if key not in self._pools:
            bit = 1 << (self.times.index(time) * len(self.weathers) + self.weathers.index(weather))
            self._pools[key] = tuple(
                i
                for i, mask, places, group in self._index[category]
                if mask & bit and (places is None or where in places) and not (single and group < 0)
            )
        return self._pools[key]

    def draw_scene(self, kind: str, rng: random.Random, previous: Scene | None) -> Scene:
        """A scene for a chapter at a place of `kind`; the weather often carries over from the previous
        chapter, so the story's weather changes gradually."""
        times = self.kind_times.get(kind, self.times)
        time = times[rng.randrange(len(times))]
        if previous is not None and rng.random() < 0.5:
            weather = previous.weather
        else:
            weather = self.weathers[rng.randrange(len(self.weathers))]
        return Scene(kind, self.setting_of[kind], time, weather, kind in self.indoor_kinds)


def _meet(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _sentence(text: str) -> str:
    return " " + text[0].upper() + text[1:] + "."


_WORD = re.compile(r"[a-z']+")


def _stem(word: str) -> str:
    """A crude stem (first five letters after dropping -ing/-ed/-es/-s and a final e): enough to
    see "glow" in "glowed" and "warm" in "warmed"."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word.rstrip("e")[:5]


def _stem_list(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text.lower()) if len(w) > 3 and w not in _STOPWORDS]


@cache
def _stems(text: str) -> frozenset[str]:
    return frozenset(_stem_list(text))


def echoes(text: str) -> bool:
    """Whether a content word comes back in the same sentence ("a soft glow glowed", "the sky ... the
    sky"): compared by their first five letters."""
    stems = _stem_list(text)
    return len(stems) != len(set(stems))


@cache
def scenery_corpus() -> SceneryCorpus:
    """The corpus of `templates/story/scenery.yaml` (built once per process)."""
    return SceneryCorpus()
