"""Build the dataset card (README.md) of an output folder from its manifest and parquet files.

`write_card` is called by the generator after every finished config, so even an interrupted run leaves
a folder that `datasets.load_dataset(folder, config)` can read. The YAML header is built with
`huggingface_hub.DatasetCardData` (the fields the Hub understands); the prose is rendered from the
jinja2 templates and per-task descriptions in `data_cards/`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from huggingface_hub import DatasetCard, DatasetCardData

from longtasks.hub.folder import (
    CARD_NAME,
    PARTIAL_SUFFIX,
    SPLIT,
    ConfigEntry,
    config_entries,
    load_manifest,
)
from longtasks.hub.stats import DEPTH_BINS, ConfigStats, config_stats
from longtasks.lengths import format_length
from longtasks.resources import data_cards_dir

CARD_TEMPLATE = "card.md.jinja"
LICENSE = "mit"
"""Synthetic data made by MIT-licensed code from seeded generators. Tasks that quote a dataset (the QA
family) add that dataset's licence; see `source_data`."""

_SIZE_CATEGORIES = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
]


@dataclass(frozen=True)
class ConfigView:
    """What the template shows for one config: the manifest entry plus measured numbers."""

    entry: ConfigEntry
    stats: ConfigStats

    @property
    def knobs_json(self) -> str:
        return json.dumps(self.entry.knobs, sort_keys=True)


def size_category(rows: int) -> str:
    """The Hub's size bucket for `rows` examples."""
    for bound, label in _SIZE_CATEGORIES:
        if rows < bound:
            return label
    return "n>10M" if rows >= 10_000_000 else "1M<n<10M"


def hub_configs(entries: list[ConfigEntry]) -> list[dict[str, Any]]:
    """The `configs` YAML entries: one per config, its parquet files as the test split."""
    return [{"config_name": e.name, "data_files": [{"split": SPLIT, "path": e.data_files}]} for e in entries]


@dataclass(frozen=True)
class SourceData:
    """Third-party data quoted by a task's rows: where from (as the rows record it) and its licence."""

    task: str
    source: str
    revision: str
    sha256: str
    license: str
    redistributable: bool


def source_data(listed: list[ConfigView]) -> list[SourceData]:
    """Every distinct source the listed configs' rows quote, with the licence its task declares."""
    from longtasks.registry import TASKS, get_task

    found: dict[SourceData, None] = {}
    for view in listed:
        if view.entry.task not in TASKS:
            continue
        spec = get_task(view.entry.task)
        for source, revision, sha256 in view.stats.sources:
            item = SourceData(
                view.entry.task,
                source,
                revision,
                sha256,
                spec.source_license or "unknown",
                spec.redistributable,
            )
            found[item] = None
    return list(found)


def card_data(
    manifest: dict[str, Any], listed: list[ConfigView], sources: list[SourceData] | None = None
) -> DatasetCardData:
    """YAML metadata the Hub reads: license, language, categories, size, tags and the configs list."""
    tasks = list(dict.fromkeys(view.entry.task for view in listed))
    rows = sum(view.stats.rows for view in listed)
    sources = sources or []
    licenses = list(dict.fromkeys([LICENSE, *(s.license for s in sources)]))
    hub_ids = [s.source for s in sources if len(s.revision) == 40 and "/" in s.source]
    return DatasetCardData(
        license=licenses if len(licenses) > 1 else LICENSE,
        language=["en"],
        language_creators=["machine-generated", *(["found"] if sources else [])],
        annotations_creators=["machine-generated", *(["found"] if sources else [])],
        multilinguality=["monolingual"],
        source_datasets=["original", *(f"extended|{hub}" for hub in dict.fromkeys(hub_ids))],
        task_categories=["question-answering", "text-generation"],
        size_categories=[size_category(rows)],
        pretty_name=pretty_name(manifest, listed),
        tags=["long-context", "synthetic", "sparse-attention", "benchmark", "longtasks", *tasks],
        configs=hub_configs([view.entry for view in listed]),
    )


def pretty_name(manifest: dict[str, Any], listed: list[ConfigView]) -> str:
    lengths = sorted({view.entry.length for view in listed})
    if not lengths:
        return "longtasks long-context tasks (no finished config yet)"
    span = format_length(lengths[0])
    if len(lengths) > 1:
        span += f"-{format_length(lengths[-1])}"
    return f"longtasks long-context tasks ({span} tokens, {manifest.get('tokenizer', 'unknown tokenizer')})"


def task_description(env: jinja2.Environment, task: str) -> str:
    """The shipped description of `task` (data_cards/tasks/<task>.md); for a task without one, its
    registry one-liner and knob defaults, so the card never claims more than the code says."""
    try:
        return env.get_template(f"tasks/{task}.md").render().strip()
    except jinja2.TemplateNotFound:
        pass
    try:
        from longtasks.registry import get_task

        spec = get_task(task)
        defaults = ", ".join(f"`{k}={v}`" for k, v in vars(spec.make_knobs()).items())
        return f"{spec.description}\n\nKnobs (defaults): {defaults}."
    except ValueError:
        return f"`{task}` is not a task of this longtasks version; no description is available."


def python_equivalent(manifest: dict[str, Any], entries: list[ConfigEntry]) -> str | None:
    """A `generate_to_dir` call that rebuilds the folder, when all configs share one num_samples/seed
    and each task one set of knobs (always true for folders written by one `longtasks generate`)."""
    if not entries:
        return None
    tasks = list(dict.fromkeys(e.task for e in entries))
    lengths = list(dict.fromkeys(e.length for e in entries))
    knobs = {task: next(e.knobs for e in entries if e.task == task) for task in tasks}
    uniform = (
        len({e.num_samples for e in entries}) == 1
        and len({e.seed for e in entries}) == 1
        and all(e.knobs == knobs[e.task] for e in entries)
        and {(e.task, e.length) for e in entries} == {(t, n) for t in tasks for n in lengths}
    )
    if not uniform:
        return None
    args = [
        '"OUT_DIR"',
        f"tasks={tasks!r}",
        f"lengths={lengths!r}",
        f"num_samples={entries[0].num_samples}",
        f"seed={entries[0].seed}",
        f"tokenizer={manifest.get('tokenizer')!r}",
        f"chat={bool(manifest.get('chat'))!r}",
        "knobs={\n" + "".join(f"        {task!r}: {values!r},\n" for task, values in knobs.items()) + "    }",
    ]
    return "from longtasks.dataset_dir import generate_to_dir\n\ngenerate_to_dir(\n    " + (
        ",\n    ".join(args) + ",\n)"
    )


def lm_eval_task_names(tasks: list[str], lengths: dict[str, set[int]] | None = None) -> str:
    """The lm-eval static task(s) that read this dataset: `longtasks_all_static` when every task is
    present, a family's static group when all of its tasks are, else the per-task `_static` names.

    A group's per-length columns average its tasks at each length, so a group is only suggested when its
    tasks hold the same lengths (`lengths`: task -> lengths held); otherwise a column would average
    different task sets at different lengths.
    """
    from longtasks.registry import ALL_GROUP, family_group, list_families, list_tasks, static_name

    def same_lengths(members: list[str]) -> bool:
        return lengths is None or len({frozenset(lengths.get(task, ())) for task in members}) == 1

    present = set(tasks)
    if tasks and present == set(list_tasks()) and same_lengths(tasks):
        return static_name(ALL_GROUP)
    names: list[str] = []
    for family in list_families():
        members = list_tasks(family)
        if set(members) <= present and same_lengths(members):
            names.append(static_name(family_group(family)))
            present -= set(members)
    names += [static_name(task) for task in tasks if task in present]
    return ",".join(names) or "NONE"


def family_sections(env: jinja2.Environment, tasks: list[str]) -> list[dict[str, str]]:
    """One card section per family present: its title and how its data is made (data_cards/families/)."""
    from longtasks.registry import get_family, task_family

    sections = []
    for name in dict.fromkeys(task_family(task) for task in tasks if _known(task)):
        family = get_family(name)
        try:
            text = env.get_template(f"families/{name}.md").render().strip()
        except jinja2.TemplateNotFound:
            text = f"Tasks of the {family.title} family: {family.summary}."
        sections.append({"name": name, "title": family.title, "description": text})
    return sections


def _known(task: str) -> bool:
    from longtasks.registry import TASKS

    return task in TASKS


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_cards_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _lengths_by_task(listed: list[ConfigView]) -> dict[str, set[int]]:
    """The lengths each task holds in the listed (complete) configs."""
    found: dict[str, set[int]] = {}
    for view in listed:
        found.setdefault(view.entry.task, set()).add(view.entry.length)
    return found


def render_card(out_dir: Path | str, *, repo_id: str | None = None) -> str:
    """The full card text for `out_dir`. Only complete configs are listed in the YAML (and so loadable);
    incomplete ones are named in the prose. `repo_id` only changes the loading example."""
    out_dir = Path(out_dir)
    manifest = load_manifest(out_dir)
    entries = config_entries(manifest)
    listed = [ConfigView(e, config_stats([out_dir / f for f in e.data_files])) for e in entries if e.complete]
    incomplete = [e.name for e in entries if not e.complete]
    env = _environment()
    sources = source_data(listed)
    data = card_data(manifest, listed, sources)
    tasks = list(dict.fromkeys(view.entry.task for view in listed))
    text = env.get_template(CARD_TEMPLATE).render(
        yaml=data.to_yaml(),
        manifest=manifest,
        pretty_name=data.pretty_name,
        configs=listed,
        incomplete=incomplete,
        tasks=[{"name": task, "description": task_description(env, task)} for task in tasks],
        families=family_sections(env, tasks),
        sources=sources,
        data_packages=manifest.get("data_packages") or {},
        lm_eval_tasks=lm_eval_task_names(tasks, _lengths_by_task(listed)),
        total_rows=sum(view.stats.rows for view in listed),
        depth_bins=DEPTH_BINS,
        repo_id=repo_id,
        commands=manifest.get("commands") or ([manifest["command"]] if manifest.get("command") else []),
        python_equivalent=python_equivalent(manifest, [view.entry for view in listed]),
        format_length=format_length,
    )
    DatasetCard(text)  # raises if the YAML header does not parse
    return text


def write_card(out_dir: Path | str) -> Path:
    """(Re)write `out_dir/README.md` from the manifest and parquet files; return its path.

    Written atomically (temp file + rename) so a reader never sees half a card.
    """
    out_dir = Path(out_dir)
    text = render_card(out_dir)
    path = out_dir / CARD_NAME
    tmp = path.with_name(f"{CARD_NAME}{PARTIAL_SUFFIX}")  # a rerun of `generate` removes it if left behind
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
