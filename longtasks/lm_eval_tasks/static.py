"""Read a task's documents from an exported dataset instead of generating them.

The source is what `longtasks generate --out DIR` writes (a folder) or its copy on the Hub: one
`datasets` config per (task, length), named like ``story_retrieval-4k``. A Hub id goes through
`datasets.load_dataset` (downloaded once, cached by revision). A local folder is read from its shards
directly: `datasets` keys its cache of a local folder by path and config name, not by content, so a
folder regenerated in place would otherwise be read back stale (rows and even columns).
"""

from __future__ import annotations

import logging
from pathlib import Path

import datasets

from longtasks.lengths import format_length, parse_length
from longtasks.lm_eval_tasks.options import StaticOptions

log = logging.getLogger(__name__)


def _is_local(source: str) -> bool:
    return Path(source).is_dir()


ACCEPTED = (
    "give a folder written by `longtasks generate --out DIR` (or `longtasks export DIR`), or a Hub dataset id "
    "(OWNER/NAME) that can be reached (check the network, HF_HUB_OFFLINE and your token)"
)


def _unreadable(source: str, error: OSError) -> ValueError:
    """A one-line error for a --data-path that is neither a local folder nor a Hub dataset that could be read:
    `datasets` says FileNotFoundError / ConnectionError (both OSError) without naming the option."""
    path = Path(source)
    if path.is_file():
        what = "is a file, not a folder"
    elif path.is_absolute() or source.startswith((".", "~")) or source.count("/") > 1:
        what = "does not exist"
    else:
        what = f"is not a local folder and could not be read from the Hub ({str(error).rstrip('.')})"
    return ValueError(f"--data-path {source!r} {what}; {ACCEPTED}")


def _config_names(source: str) -> list[str]:
    if _is_local(source):
        from longtasks.dataset_dir import read_manifest

        manifest = read_manifest(source)
        return [name for name, entry in manifest.get("configs", {}).items() if entry.get("complete")]
    try:
        return datasets.get_dataset_config_names(source)
    except OSError as error:  # no such folder, no such Hub dataset, or the Hub cannot be reached
        raise _unreadable(source, error) from error


def _load_config(source: str, config: str) -> datasets.Dataset:
    if not _is_local(source):
        try:
            return datasets.load_dataset(source, config, split="test")
        except OSError as error:
            raise _unreadable(source, error) from error
    from longtasks.reading import read_rows
    from longtasks.sample import row_schema

    features = datasets.Features.from_arrow_schema(row_schema())
    return datasets.Dataset.from_list(read_rows(source, config), features=features)


def available_lengths(source: str, task: str) -> list[int]:
    """Lengths the dataset at `source` holds for `task`, ascending (from its config names)."""
    prefix = f"{task}-"
    lengths = []
    for name in _config_names(source):
        if name.startswith(prefix):
            try:
                lengths.append(parse_length(name[len(prefix) :]))
            except ValueError:
                continue
    return sorted(set(lengths))


def _config_name(task: str, length: int) -> str:
    from longtasks.dataset_dir import config_name

    return config_name(task, length)


def _check_column(task: str, source: str, split: datasets.Dataset, column: str, wanted: object) -> None:
    found = sorted(set(split[column]), key=str)
    if found != [wanted]:
        raise ValueError(
            f"{task}: the dataset {source!r} was generated with {column}={found} but this run asks for "
            f"{column}={wanted!r}; regenerate it with matching settings or drop the {column} setting"
        )


def load_static_rows(task: str, options: StaticOptions) -> datasets.Dataset:
    """All requested lengths of `task` from the exported dataset, shortest first."""
    available = available_lengths(options.source, task)
    if not available:
        raise ValueError(
            f"{task}: the dataset {options.source!r} has no config for this task (expected names like "
            f"{_config_name(task, 4096)!r}); generate it with `longtasks generate {task} --lengths ... --out DIR`, "
            "or evaluate only the tasks DIR holds (e.g. longtasks_story_static, longtasks_ruler_static)"
        )
    lengths = options.lengths or tuple(available)
    missing = [length for length in lengths if length not in available]
    if missing:
        raise ValueError(
            f"{task}: the dataset {options.source!r} has no data at length(s) "
            f"{[format_length(length) for length in missing]}; it has {[format_length(x) for x in available]}"
        )
    parts = []
    for length in lengths:
        split = _load_config(options.source, _config_name(task, length))
        if options.num_samples is not None:
            if len(split) < options.num_samples:
                raise ValueError(
                    f"{task}: the dataset {options.source!r} holds {len(split)} samples at "
                    f"{format_length(length)}, fewer than num_samples={options.num_samples}"
                )
            split = split.select(range(options.num_samples))
        if options.chat is not None:
            _check_column(task, options.source, split, "chat", options.chat)
        parts.append(split)
    dataset = datasets.concatenate_datasets(parts)
    stored = sorted(set(dataset["tokenizer"]))
    if options.tokenizer is not None and stored != [options.tokenizer]:
        _check_other_tokenizer(task, dataset, stored, options.tokenizer)
    return dataset


def same_tokenizer_files(revision: object, stored: object) -> bool:
    """Whether a loaded tokenizer's revision pins the data's (an "unknown" revision pins nothing)."""
    return isinstance(revision, str) and revision not in ("", "unknown") and revision == stored


def unloadable_data_tokenizer(task: str, name: str, error: Exception) -> ValueError:
    """The error for a dataset whose `tokenizer` column names a tokenizer that cannot be loaded here: it holds
    whatever `generate --tokenizer` was given (e.g. a relative folder), which the user never typed here."""
    return ValueError(
        f"{task}: cannot load the tokenizer {name!r} named in the dataset's `tokenizer` column (what `longtasks "
        "generate --tokenizer` was given; a relative folder only resolves where the data was made) to count "
        "the prompts in: pass the model's tokenizer, e.g. --model_args pretrained=PATH or --metadata "
        f'\'{{"tokenizer": "PATH"}}\' (task_manager(tokenizer=PATH) in Python). Loading it said: {error}'
    )


def _check_other_tokenizer(task: str, dataset: datasets.Dataset, stored: list[str], tokenizer: str) -> None:
    """Lengths are exact only in the dataset's tokenizer. The run reserves `length` tokens per prompt
    (plus the answer budget), so a prompt that is longer in the model's tokenizer would be cut by lm-eval:
    count every prompt as the model will see it and refuse that case; shorter prompts only get a warning.
    The same tokenizer files under another name (a relative folder given at generate time) are no other."""
    from longtasks.tokenizer import load_tokenizer

    model_tokenizer = load_tokenizer(tokenizer)
    revisions = set(dataset["tokenizer_revision"])
    if len(revisions) == 1 and same_tokenizer_files(model_tokenizer.revision, revisions.pop()):
        return
    too_long = []
    for row in dataset:
        text = model_tokenizer.chat_wrap(row["prompt"]) if row["chat"] else row["prompt"]
        tokens = model_tokenizer.count_model_input(text)
        if tokens > row["length"]:
            too_long.append((row["id"], tokens, row["length"]))
    if too_long:
        sample_id, tokens, length = max(too_long, key=lambda item: item[1] - item[2])
        raise ValueError(
            f"{task}: the dataset was generated with tokenizer {stored} but the model uses {tokenizer!r}, in "
            f"which {len(too_long)} prompt(s) are longer than their length (e.g. {sample_id}: {tokens} tokens "
            f"for {length}) and would be truncated; regenerate the data with `longtasks generate "
            f"--tokenizer {tokenizer}` (or run the generated task variant, which does this on the fly)"
        )
    log.warning(
        "%s: the dataset was generated with tokenizer %s but the model uses %s: prompts fit, but their "
        "lengths are exact in the dataset's tokenizer only",
        task, stored, tokenizer,
    )  # fmt: skip
