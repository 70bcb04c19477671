"""Find lm-eval runs in output folders: each `results_<stamp>.json` with the `samples_<task>_<stamp>.jsonl`
files saved beside it by `--log_samples`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_PREFIX = "results_"
TMP_PREFIX = ".tmp-"
"""Name prefix of a sweep cell being written (renamed when complete): never read as results. Other folders
whose names start with a dot are read: lm-eval names a run of `./model` `.__model`."""


class MissingSamplesError(ValueError):
    """A run was saved without per-sample scores, which the statistics need."""


@dataclass(frozen=True)
class Run:
    """One lm-eval run: its results JSON and, per evaluated task, the per-sample file."""

    results_path: Path
    results: dict[str, Any]
    samples: dict[str, Path]

    @property
    def config(self) -> dict[str, Any]:
        return self.results.get("config") or {}

    @property
    def model_args(self) -> dict[str, Any]:
        args = self.config.get("model_args") or {}
        if isinstance(args, str):  # lm-eval keeps the CLI string when given one
            args = dict(part.split("=", 1) for part in args.split(",") if "=" in part)
        return dict(args)

    @property
    def date(self) -> float:
        return float(self.results.get("date") or 0.0)


def _stamp(results_path: Path) -> str:
    return results_path.stem[len(RESULTS_PREFIX) :]


def load_run(results_path: Path) -> Run:
    """Read one results JSON and locate its samples; MissingSamplesError if any task has none."""
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{results_path} is not valid JSON ({error}); delete it or rerun that evaluation"
        ) from None
    stamp = _stamp(results_path)
    tasks = sorted((results.get("n-samples") or {}).keys()) or sorted(
        name for name in (results.get("configs") or {}) if name in (results.get("results") or {})
    )
    samples: dict[str, Path] = {}
    missing = []
    for task in tasks:
        path = results_path.parent / f"samples_{task}_{stamp}.jsonl"
        if path.is_file():
            samples[task] = path
        else:
            missing.append(task)
    if missing:
        raise MissingSamplesError(
            f"{results_path} has no per-sample scores for {', '.join(missing)} (expected "
            f"samples_<task>_{stamp}.jsonl beside it). The maximum-compression test and the bootstrap "
            "intervals need every sample's score: rerun the evaluation with --log_samples "
            "(`longtasks sweep` always logs them)"
        )
    return Run(results_path=results_path, results=results, samples=samples)


def find_runs(folders: Iterable[Path]) -> Iterator[Run]:
    """Every run under the given folders (searched recursively), oldest first within a folder."""
    seen = False
    for folder in folders:
        folder = Path(folder)
        if not folder.exists():
            raise FileNotFoundError(f"results folder {folder} does not exist")
        paths = [folder] if folder.is_file() else sorted(folder.rglob(f"{RESULTS_PREFIX}*.json"))
        for path in paths:
            if any(part.startswith(TMP_PREFIX) for part in path.relative_to(folder).parts[:-1]):
                continue  # a sweep's unfinished temporary cell
            seen = True
            yield load_run(path)
    if not seen:
        raise FileNotFoundError(
            "no lm-eval results (results_*.json) found; pass the --output_path folder(s) of "
            "`longtasks eval ... --log_samples` or a `longtasks sweep` folder"
        )
