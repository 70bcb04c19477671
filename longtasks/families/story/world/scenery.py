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
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple

import yaml

from longtasks.families.story.world.entities import LOCATION_KINDS
from longtasks.prompt import render_snippet
from longtasks.resources import templates_dir

_SEED = 20_250_415  # fixed: the corpus is part of the generator's definition, not of a sample's seed
_PAIRS_PER_SCENE = 150  # joined two-clause sentences made for each (setting, time, weather)
_SKY_PAIRS_PER_SCENE = 200
_INTERLUDE_PAIRS = 12000
_TALK_PAIRS = 500
_INTERLUDE_WORDS = 13
_HERO_PAIRS_PER_SCENE = 120
_JOINS = (", and ", "; ", ", and ", ", while ", "; ", ", and ")
_PLAIN_JOINS = (", and ", "; ")
_ONCE_PER_GROUP = frozenset({"sky", "talk"})
_INDOOR_SETTINGS = frozenset(
    {"hall", "works"}
)  # settings whose protagonist lines never pair with the sky  # for interludes and talk, where "while" reads oddly
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


class _Clause(NamedTuple):
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
        data = data if data is not None else _load_yaml()
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
        self._index: dict[str, list[tuple[int, int, frozenset[str] | None, int]]] = {}
        self._masks: dict[tuple[frozenset[str], frozenset[str]], int] = {}
        rng = random.Random(_SEED)
        self.indoor_kinds = frozenset(
            self._known(data.get("indoor", ()), tuple(self.setting_of), "place kind")
        )
        sky = self._clauses("sky", data["sky"], None)
        sky_pairs = self._pairs(sky, rng, _SKY_PAIRS_PER_SCENE, per_scene=True)
        self._add("sky", sky + sky_pairs)
        self._add("sky:in", [c._replace(text="outside, " + c.text) for c in sky + sky_pairs])
        for setting in data["settings"]:
            clauses = self._clauses(setting, data["places"][setting], set(data["settings"][setting]), "kinds")
            self._add(
                f"place:{setting}", clauses + self._pairs(clauses, rng, _PAIRS_PER_SCENE, per_scene=True)
            )
        hero = self._clauses("hero", data["hero"], set(data["settings"]), "settings")
        for pronoun in PRONOUNS:
            who, cap, whom, their = _HERO_FORMS[pronoun]
            forms = {"who": who, "Who": cap, "whom": whom, "their": their}
            told = [
                c._replace(text=render_snippet("story", c.text, **forms), parts=_spoken(c.parts))
                for c in hero
            ]
            paired = self._pairs(told, rng, _HERO_PAIRS_PER_SCENE, True, other=sky)
            outdoors = frozenset(data["settings"]) - _INDOOR_SETTINGS  # inside, the sky is not at hand
            paired = [c._replace(where=(c.where or outdoors) & outdoors) for c in paired]
            self._add(f"hero:{pronoun}", told + [c for c in paired if c.where])
        talk = self._clauses("talk", data["talk"], None)
        self._add("talk", talk + self._pairs(talk, rng, _TALK_PAIRS, False, other=talk, joins=_PLAIN_JOINS))
        self._interludes = self._clauses("interludes", data["interludes"], None)
        pairs = self._pairs(self._interludes, rng, _INTERLUDE_PAIRS, per_scene=False, joins=_PLAIN_JOINS)
        # Short ones only: they come between any two sentences, and the many short lengths let every
        # length be drawn often without repeating a sentence.
        self.interludes = list(
            dict.fromkeys(
                _sentence(c.text) for c in self._interludes + pairs if len(c.text.split()) <= _INTERLUDE_WORDS
            )
        )
        # One fixed shuffle per category, which every pool keeps: neighbours in a pool then rarely share a
        # clause (drawing walks a pool in order).
        for category, index in self._index.items():
            random.Random(zlib.crc32(category.encode())).shuffle(index)
        self._lay_out_in_pool_order()
        self._pools: dict[tuple[str, ...], tuple[int, ...]] = {}
        self._by_scene: dict[tuple[str, str, str], list[tuple[int, frozenset[str] | None, int]]] = {}
        self._prepared = False
        self._ring_cache: dict[tuple[tuple[str, ...], int], tuple[tuple[int, ...], int]] = {}
        self._rings_made: set[int] = set()
        self._scenes: dict[tuple[str, str, str], Scene] = {}
        self.bare = [text[1:] for text in self.texts]  # without the leading space

    def _lay_out_in_pool_order(self) -> None:
        """Make each sentence's id object and clause set anew, in the order the pools list them (each
        category's shuffled order): drawing walks a pool in order, and then reads memory in order too.
        Only where objects sit changes, not a value (drawing got ~10 % faster)."""
        parts = list(self.parts)
        for category, index in self._index.items():
            moved = []
            for i, mask, where, group in index:
                parts[i] = frozenset(tuple(parts[i]))
                moved.append((i + 0, mask, where, group))  # i + 0: a new int object, next to the last
            self._index[category] = moved
        self.parts = parts

    def _known(self, values: Iterable[str], allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
        values = tuple(values)
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ValueError(f"scenery.yaml: unknown {what}(s) {bad}; known: {list(allowed)}")
        return values

    def _clauses(
        self, label: str, groups: list[dict[str, Any]], where_allowed: set[str] | None, where_key: str = ""
    ) -> list[_Clause]:
        clauses = []
        for number, group in enumerate(groups):
            when = frozenset(self._known(group.get("when", self.times), self.times, "time"))
            if where_key == "kinds" and group.get("kinds"):  # never a time its place kinds do not allow
                when &= frozenset(t for kind in group["kinds"] for t in self.kind_times.get(kind, self.times))
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
            # The sky, the talk and groups marked `once`: one sentence of the group per chapter (not rain,
            # then rain again; not a farm dog, then an old sheepdog).
            whole = (f"#{label}:{number}",) if label in _ONCE_PER_GROUP or group.get("once") else ()
            clauses += [
                _Clause(t.strip(), number, when, weather, where, (*parts, *whole)) for t, parts in texts
            ]
        return clauses

    def _pairs(
        self,
        clauses: list[_Clause],
        rng: random.Random,
        count: int,
        per_scene: bool,
        other: list[_Clause] | None = None,
        joins: tuple[str, ...] = _JOINS,
    ) -> list[_Clause]:
        """Two clauses of different groups that share a scene (and a place kind), joined into one
        sentence: `count` tries for every (time, weather), or `count` tries in all. With `other`, the
        second clause comes from there (e.g. the protagonist, then the sky)."""
        scenes = [(t, w) for t in self.times for w in self.weathers] if per_scene else [(None, None)]
        made: list[_Clause] = []
        for time, weather in scenes:
            first = _by_group(c for c in clauses if time is None or (time in c.when and weather in c.weather))
            second = (
                first
                if other is None
                else _by_group(c for c in other if time is None or (time in c.when and weather in c.weather))
            )
            if not first or not second:
                continue
            for _ in range(count):  # a group uniformly, then one of its clauses: small groups get paired too
                group = first[int(rng.random() * len(first))]
                a = group[int(rng.random() * len(group))]
                group = second[int(rng.random() * len(second))]
                b = group[int(rng.random() * len(group))]
                where = _meet(a.where, b.where)
                if a is b or (other is None and a.group == b.group) or where == frozenset():
                    continue
                join = joins[int(rng.random() * len(joins))]
                if _stems(a.text) & _stems(b.text) or (_stems(a.text) | _stems(b.text)) & _stems(join):
                    continue
                text = a.text + join + b.text
                made.append(
                    _Clause(text, -1, a.when & b.when, a.weather & b.weather, where, a.parts + b.parts)
                )
        return made

    def _add(self, category: str, clauses: list[_Clause]) -> None:
        for clause in clauses:
            text = _sentence(clause.text)
            if text in self._ids:
                continue
            self._ids[text] = len(self.texts)
            self.texts.append(text)
            self.parts.append(
                frozenset(self._part_ids.setdefault(p, len(self._part_ids)) for p in clause.parts)
            )
            mask = self._masks.get((clause.when, clause.weather))
            if mask is None:
                mask = self._masks[(clause.when, clause.weather)] = sum(
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
        pool = self._pools.get(key)
        if pool is None:
            scene = self._by_scene.get((category, time, weather))
            if scene is None:
                bit = 1 << (self.times.index(time) * len(self.weathers) + self.weathers.index(weather))
                scene = self._by_scene[(category, time, weather)] = [
                    (i, places, group) for i, mask, places, group in self._index[category] if mask & bit
                ]
            pool = self._pools[key] = tuple(
                i
                for i, places, group in scene
                if (places is None or where in places) and not (single and group < 0)
            )
        return pool

    def ring(self, key: tuple[str, ...], overlap: int) -> tuple[tuple[int, ...], int]:
        """A pool followed by its first `overlap` ids again (a window may wrap around), and its size."""
        ring = self._ring_cache.get((key, overlap))
        if ring is None:
            pool = self.pool(*key)
            ring = self._ring_cache[(key, overlap)] = (pool + pool[:overlap], len(pool))
        return ring

    def prepare(self, overlap: int | None = None) -> None:
        """Build every pool now (~0.1 s, once per process), and with `overlap` every ring too (`ring`),
        so that samples cost the same whenever made."""
        if not self._prepared:
            for key in self.pool_keys():
                self.pool(*key)
            self._prepared = True
        if overlap is not None and overlap not in self._rings_made:
            for category, time, weather, where, single in list(self._pools):
                key = (category, time, weather, where, single) if single else (category, time, weather, where)
                self.ring(key, overlap)
            self._rings_made.add(overlap)

    def pool_keys(self) -> list[tuple[str, ...]]:
        """Every pool a story can draw from (for checks): sky, talk, the protagonist's lines per setting and
        each place kind's scenery, for every time of day the kind allows and every weather."""
        keys: list[tuple[str, ...]] = []
        for t in self.times:
            for w in self.weathers:
                keys += [("sky", t, w), ("sky:in", t, w), ("talk", t, w), ("sky", t, w, "", "single")]
                for setting in sorted(set(self.setting_of.values())):
                    keys += [(f"hero:{pronoun}", t, w, setting) for pronoun in PRONOUNS]
                for kind, setting in self.setting_of.items():
                    if t in self.kind_times.get(kind, self.times):
                        keys.append((f"place:{setting}", t, w, kind))
        return keys

    def draw_scene(self, kind: str, rng: random.Random, previous: Scene | None) -> Scene:
        """A scene for a chapter at a place of `kind`; the weather often carries over from the previous
        chapter, so the story's weather changes gradually."""
        times = self.kind_times.get(kind, self.times)
        time = times[rng.randrange(len(times))]
        if previous is not None and rng.random() < 0.5:
            weather = previous.weather
        else:
            weather = self.weathers[rng.randrange(len(self.weathers))]
        scene = self._scenes.get((kind, time, weather))
        if scene is None:  # one object per scene, shared by every chapter that has it
            scene = self._scenes[(kind, time, weather)] = Scene(
                kind, self.setting_of[kind], time, weather, kind in self.indoor_kinds
            )
        return scene


def _by_group(clauses: Iterable[_Clause]) -> list[list[_Clause]]:
    groups: dict[int, list[_Clause]] = {}
    for clause in clauses:
        groups.setdefault(clause.group, []).append(clause)
    return list(groups.values())


def _spoken(parts: tuple[str, ...]) -> tuple[str, ...]:
    """A hero line's parts without the protagonist (who may be the subject of several sentences)."""
    return tuple(p for p in parts if "{{" not in p or len(p) > 20)


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


def _load_yaml() -> dict[str, Any]:
    """templates/story/scenery.yaml, with libyaml's fast loader when it is installed."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load((templates_dir() / "story" / "scenery.yaml").read_text(encoding="utf-8"), Loader=loader)


@cache
def scenery_corpus() -> SceneryCorpus:
    """The corpus of `templates/story/scenery.yaml` (built once per process)."""
    return SceneryCorpus()
