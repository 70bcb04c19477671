"""Write generated samples to an output folder: one parquet config per task x length, resumable.

Layout: ``DIR/longtasks.json`` (manifest), ``DIR/README.md`` (dataset card with the `configs` list
that `datasets.load_dataset(DIR, "<task>-<length>")` needs), ``DIR/data/<config>/test-<a>-<b>-<settings hash>.parquet``.
Every file is written to a temporary name and renamed into place, so an interrupted run leaves only
finished shards; running the same command again skips them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longtasks.fit import LengthError
from longtasks.generation import (
    SampleError,
    build_first_sample,
    check_request,
    generate_samples,
    resolve_tokenizer,
)
from longtasks.lengths import format_length
from longtasks.paths import check_output_folder
from longtasks.registry import get_family, get_task, task_family
from longtasks.sample import Sample, row_schema
from longtasks.task import Redraw
from longtasks.version import GENERATOR_VERSION, package_version

MANIFEST_NAME = "longtasks.json"
DATA_DIR = "data"
SPLIT = "test"
FORMAT_VERSION = 1
TMP_SUFFIX = ".partial"


def config_name(task: str, length: int) -> str:
    """``story_retrieval-4k``: the dataset config name of a task at a length."""
    return f"{task}-{format_length(length)}"


def data_packages(tasks: list[str]) -> dict[str, str]:
    """Versions of the packages whose tables these tasks' families draw from (they fix the data too)."""
    names = dict.fromkeys(p for task in tasks for p in get_family(task_family(task)).data_packages)
    return {name: package_version(name) for name in sorted(names)}


def default_shard_size(length: int) -> int:
    """Roughly 2M tokens per shard: small shards resume cheaply, large ones keep file counts low."""
    return max(1, min(100, 2_000_000 // length))


def config_hash(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ConfigPlan:
    name: str
    task: str
    length: int
    knobs: dict[str, Any]
    settings_hash: str
    shard_size: int

    def shard_ranges(self, num_samples: int) -> list[tuple[int, int]]:
        return [(a, min(a + self.shard_size, num_samples)) for a in range(0, num_samples, self.shard_size)]

    def shard_path(self, start: int, end: int) -> str:
        """Rows [start, end). The settings' hash in the name: `datasets` caches a local folder by the files
        its card names, so a config regenerated with other settings must name other files."""
        return f"{DATA_DIR}/{self.name}/{SPLIT}-{start:06d}-{end:06d}-{self.settings_hash}.parquet"


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    """The folder's manifest ({} when it has none). A damaged file is a ValueError naming it: a bare JSON
    decoder message does not say which file, and a manifest of the wrong shape would fail far from here."""
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        return {}
    fix = "restore it, or generate the data again into a new folder"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); {fix}") from None
    configs = manifest.get("configs") if isinstance(manifest, dict) else None
    if not isinstance(configs, dict) or not all(isinstance(entry, dict) for entry in configs.values()):
        raise ValueError(
            f"{path} is not a longtasks manifest (expected a JSON object whose 'configs' maps each config "
            f"name to its settings); {fix}"
        )
    return manifest


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + TMP_SUFFIX)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_rows(path: Path, samples: list[Sample]) -> None:
    """Write one shard atomically (temporary file, then rename)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([s.to_row() for s in samples], schema=row_schema())
    tmp = path.with_name(path.name + TMP_SUFFIX)
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _plans(
    tasks: list[str],
    lengths: list[int],
    num_samples: int,
    knobs: Mapping[str, Mapping[str, Any]],
    tokenizer_name: str,
    tokenizer_revision: str,
    seed: int,
    chat: bool,
    existing: Mapping[str, Any],
) -> list[ConfigPlan]:
    plans = []
    for task in tasks:
        for length in lengths:
            knob_values = dataclasses.asdict(check_request(task, length, num_samples, knobs.get(task)))
            settings = {
                "task": task,
                "length": length,
                "seed": seed,
                "knobs": knob_values,
                "tokenizer": tokenizer_name,
                "tokenizer_revision": tokenizer_revision,
                "chat": chat,
                "generator_version": GENERATOR_VERSION,
                "data_packages": data_packages([task]),
            }
            name = config_name(task, length)
            previous = existing.get(name, {})
            shard_size = int(previous.get("shard_size") or default_shard_size(length))
            plans.append(ConfigPlan(name, task, length, knob_values, config_hash(settings), shard_size))
    return plans


def generate_to_dir(
    out_dir: str | Path,
    tasks: list[str],
    lengths: list[int],
    *,
    num_samples: int,
    seed: int = 0,
    tokenizer: str | None = None,
    chat: bool = False,
    knobs: Mapping[str, Mapping[str, Any]] | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Generate every task x length config into `out_dir` (resuming finished shards); return the manifest.

    Everything is validated — task names, knobs, lengths, that the first sample of every config fits
    its length — before the folder is created or touched.
    """
    out = Path(out_dir)
    check_output_folder(out)
    if not tasks:
        raise ValueError("no task given: name at least one (see `longtasks list`)")
    if not lengths:
        raise ValueError("no length given: name at least one, e.g. [4096] (4k)")
    # a name given twice makes one config
    tasks, lengths = list(dict.fromkeys(tasks)), list(dict.fromkeys(lengths))
    knobs = knobs or {}
    for task in knobs:
        get_task(task)
        if task not in tasks:
            raise ValueError(
                f"knobs are given for {task!r}, which is not among the tasks {tasks}: add it or drop its knobs"
            )
    tok = resolve_tokenizer(tokenizer)
    previous = read_manifest(out) if out.exists() else {}
    if out.exists() and not previous and any(not p.name.endswith(TMP_SUFFIX) for p in out.iterdir()):
        raise ValueError(
            f"{out} exists, is not empty and is not a longtasks output folder; choose another --out"
        )
    replace_all = _check_folder_settings(previous, tok.name, tok.revision, chat, overwrite, out)
    existing = {} if replace_all else dict(previous.get("configs", {}))
    for name, entry in existing.items():  # a config whose files are not all there is not finished
        if entry.get("complete") and not all((out / shard).is_file() for shard in entry.get("shards", [])):
            existing[name] = {**entry, "complete": False}
    plans = _plans(tasks, lengths, num_samples, knobs, tok.name, tok.revision, seed, chat, existing)
    stale = _check_compatible(plans, existing, overwrite, out)
    _check_no_rows_dropped(plans, existing, stale, num_samples, overwrite, out)

    def reusable(plan: ConfigPlan) -> bool:
        first = plan.shard_ranges(num_samples)[0]
        return plan.name not in stale and _shard_done(out, plan, first)

    first_samples = {
        plan.name: build_first_sample(get_task(plan.task), get_task(plan.task).make_knobs(plan.knobs),
                                plan.length, seed, 0, tok, chat)
        for plan in plans
        if not reusable(plan)
    }  # fmt: skip
    # Everything is validated: only now is anything on disk changed.
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    _remove_partials(out)
    removed = set(previous.get("configs", {})) if replace_all else stale
    for name in removed:
        _remove_config(out, name)
        existing.pop(name, None)
    commands = [] if replace_all else list(previous.get("commands") or [])
    if command and command not in commands:
        commands.append(command)
    manifest = {
        "format": FORMAT_VERSION,
        "generator_version": GENERATOR_VERSION,
        "data_packages": data_packages(
            list(dict.fromkeys([*tasks, *(e["task"] for e in existing.values())]))
        ),
        "tokenizer": tok.name,
        "tokenizer_revision": tok.revision,
        "chat": chat,
        "seed": seed,
        "num_samples": num_samples,
        "command": command or previous.get("command"),
        "commands": commands,
        "configs": existing,
    }
    if removed:  # the card must not name them, also if this run stops before its first config is done
        _save_manifest(out, manifest)
        _write_card(out)
    for plan in plans:
        try:
            _generate_config(
                out, plan, manifest, num_samples, seed, tok, chat, workers, progress, first_samples, command
            )
        except (SampleError, LengthError, Redraw) as error:  # a later sample cannot be built
            kept = _drop_if_empty(out, manifest, plan.name, created)
            tail = (
                f"{plan.name}'s finished shards were kept (marked unfinished): pass --overwrite with the new "
                "settings to replace them"
                if kept
                else f"Nothing was written for {plan.name}."
            )
            raise SampleError(f"{error} {tail}") from error
        _write_card(out)
    return manifest


def _drop_if_empty(out: Path, manifest: dict[str, Any], name: str, created: bool) -> bool:
    """After settings failed part-way: a config with no finished shard leaves no manifest entry behind (it
    would only block a rerun with other settings), and a folder this run created that is left empty goes
    too. Finished shards are never deleted. Returns whether any were kept."""
    if any((out / DATA_DIR / name).glob("*.parquet")):
        return True
    manifest["configs"].pop(name, None)
    if created and not manifest["configs"]:
        shutil.rmtree(out)
        return False
    _save_manifest(out, manifest)
    _write_card(out)
    return False


def _check_folder_settings(
    previous: Mapping[str, Any], tokenizer: str, revision: str, chat: bool, overwrite: bool, out: Path
) -> bool:
    """One folder, one tokenizer and chat mode (the card describes them once). Returns True when the
    run replaces the whole folder (--overwrite with other folder settings)."""
    if not previous.get("configs"):
        return False
    before = (previous.get("tokenizer"), previous.get("tokenizer_revision"), bool(previous.get("chat")))
    now = (tokenizer, revision, chat)
    if before == now:
        return False
    if not overwrite:
        raise ValueError(
            f"{out} holds data made with tokenizer {before[0]!r} (revision {before[1]}), chat mode "
            f"{'on' if before[2] else 'off'}; this run uses {now[0]!r} (revision {now[1]}), chat mode "
            f"{'on' if now[2] else 'off'}. Use another --out, or --overwrite to replace the whole folder"
        )
    return True


def _check_compatible(
    plans: list[ConfigPlan], existing: Mapping[str, Any], overwrite: bool, out: Path
) -> set[str]:
    """Names of configs whose stored rows were made with other settings (to replace, with --overwrite)."""
    stale = {
        plan.name
        for plan in plans
        if plan.name in existing and existing[plan.name].get("config_hash") != plan.settings_hash
    }
    if stale and not overwrite:
        raise ValueError(
            f"{out} already holds config(s) {sorted(stale)} made with other settings (seed, knobs or generator "
            "version differ); use another --out or pass --overwrite"
        )
    return stale


def _check_no_rows_dropped(
    plans: list[ConfigPlan],
    existing: Mapping[str, Any],
    stale: set[str],
    num_samples: int,
    overwrite: bool,
    out: Path,
) -> None:
    """A rerun asking for fewer samples would delete finished rows: only with --overwrite. The rows counted
    are those on disk (an interrupted rerun that asked for more may have finished fewer than it promised)."""
    finished = {plan.name: _rows_on_disk(out, plan.name) for plan in plans if plan.name in existing}
    shrinking = {name: rows for name, rows in finished.items() if name not in stale and rows > num_samples}
    if shrinking and not overwrite:
        dropped = sum(before - num_samples for before in shrinking.values())
        raise ValueError(
            f"{out} holds more samples than --num-samples {num_samples} for {sorted(shrinking)} "
            f"(e.g. {next(iter(shrinking.values()))}); this run would delete {dropped} row(s). Use "
            f"--num-samples {max(shrinking.values())} to keep them, or --overwrite to shrink the config(s)"
        )


def _rows_on_disk(out: Path, name: str) -> int:
    """Rows in the config's finished shards (parquet footers only)."""
    import pyarrow.parquet as pq

    folder = out / DATA_DIR / name
    return (
        sum(pq.ParquetFile(f).metadata.num_rows for f in folder.glob("*.parquet")) if folder.exists() else 0
    )


def _remove_config(out: Path, name: str) -> None:
    folder = out / DATA_DIR / name
    for shard in folder.glob("*.parquet") if folder.exists() else []:
        shard.unlink()


def _shard_done(out: Path, plan: ConfigPlan, shard: tuple[int, int]) -> bool:
    return (out / plan.shard_path(*shard)).is_file()


def _remove_partials(out: Path) -> None:
    """Temporary files left by an interrupted run are incomplete by definition."""
    for partial in out.rglob(f"*{TMP_SUFFIX}"):
        partial.unlink()


def _generate_config(
    out: Path,
    plan: ConfigPlan,
    manifest: dict[str, Any],
    num_samples: int,
    seed: int,
    tok: Any,
    chat: bool,
    workers: int,
    progress: bool,
    first_samples: dict[str, Sample],
    command: str | None,
) -> None:
    ranges = plan.shard_ranges(num_samples)
    wanted = {plan.shard_path(a, b) for a, b in ranges}
    entry = {
        "task": plan.task,
        "length": plan.length,
        "num_samples": num_samples,
        "seed": seed,
        "knobs": plan.knobs,
        "config_hash": plan.settings_hash,
        "shard_size": plan.shard_size,
        "shards": sorted(wanted),
        "complete": False,
        "command": command,
    }
    previous = manifest["configs"].get(plan.name, {})
    manifest["configs"][plan.name] = entry
    _save_manifest(out, manifest)
    if previous.get("complete") and previous.get("shards") != entry["shards"]:
        _write_card(out)  # the card named the old shards: unlist the config until it is complete again
    folder = out / DATA_DIR / plan.name
    for stale in folder.glob("*.parquet") if folder.exists() else []:
        if f"{DATA_DIR}/{plan.name}/{stale.name}" not in wanted:
            stale.unlink()  # same settings, other sample count: rows are recomputable
    todo = [r for r in ranges if not _shard_done(out, plan, r)]
    bar, task_id = _progress(progress, plan.name, num_samples, num_samples - sum(b - a for a, b in todo))
    try:
        _write_shards(out, plan, todo, first_samples, seed, tok, chat, workers, bar, task_id)
    finally:  # also on an interrupt: a live bar leaves the terminal's cursor hidden
        if bar is not None:
            bar.stop()
    entry["complete"] = True
    _save_manifest(out, manifest)


def _write_shards(
    out: Path,
    plan: ConfigPlan,
    todo: list[tuple[int, int]],
    first_samples: dict[str, Sample],
    seed: int,
    tok: Any,
    chat: bool,
    workers: int,
    bar: Any,
    task_id: Any,
) -> None:
    for start, end in todo:
        samples: list[Sample] = []
        if start == 0 and plan.name in first_samples:
            samples.append(first_samples[plan.name])
            _advance(bar, task_id, 1)
        if end - start > len(samples):
            samples += generate_samples(
                plan.task, plan.length, end - start - len(samples), seed=seed, tokenizer=tok, chat=chat,
                knobs=plan.knobs, start=start + len(samples), workers=workers,
                progress=lambda n: _advance(bar, task_id, n),
            )  # fmt: skip
        write_rows(out / plan.shard_path(start, end), samples)


def _save_manifest(out: Path, manifest: dict[str, Any]) -> None:
    _atomic_write_text(out / MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=False) + "\n")


def _write_card(out: Path) -> None:
    from longtasks.hub.card import write_card

    write_card(out)


def _progress(enabled: bool, label: str, total: int, done: int):
    if not enabled:
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    bar.start()
    return bar, bar.add_task(label, total=total, completed=done)


def _advance(bar: Any, task_id: Any, n: int) -> None:
    if bar is not None:
        bar.advance(task_id, n)
