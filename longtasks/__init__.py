"""longtasks: exact-length long-context tasks (story and RULER families) with exact scorers.

Public API::

    longtasks.generate(task, length, num_samples, seed=0, tokenizer=None, chat=False, knobs=None)
    longtasks.generate_to_dir(out_dir, tasks, lengths, num_samples=..., ...)
    longtasks.score(predictions, dataset)
    longtasks.list_tasks(family=None), longtasks.get_task(name), longtasks.load_tokenizer(name=None)
    longtasks.export(out_dir), longtasks.push(out_dir, repo_id, private=False, token=None, dry_run=False)

Names are imported on first use, so `import longtasks` (and the CLI) starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DEFAULT_TOKENIZER": "longtasks.tokenizer",
    "GENERATOR_VERSION": "longtasks.version",
    "Sample": "longtasks.sample",
    "config_name": "longtasks.dataset_dir",
    "export": "longtasks.hub",
    "format_length": "longtasks.lengths",
    "generate_samples": "longtasks.generation",
    "generate_to_dir": "longtasks.dataset_dir",
    "get_task": "longtasks.registry",
    "list_families": "longtasks.registry",
    "list_tasks": "longtasks.registry",
    "load_tokenizer": "longtasks.tokenizer",
    "parse_length": "longtasks.lengths",
    "parse_lengths": "longtasks.lengths",
    "push": "longtasks.hub",
    "read_manifest": "longtasks.dataset_dir",
    "score": "longtasks.scoring",
    "score_prediction": "longtasks.scoring",
}
_ALIASES = {"generate": "generate_samples"}

if TYPE_CHECKING:
    from longtasks.dataset_dir import config_name, generate_to_dir, read_manifest
    from longtasks.generation import generate_samples
    from longtasks.generation import generate_samples as generate
    from longtasks.hub import export, push
    from longtasks.lengths import format_length, parse_length, parse_lengths
    from longtasks.registry import get_task, list_families, list_tasks
    from longtasks.sample import Sample
    from longtasks.scoring import score, score_prediction
    from longtasks.tokenizer import DEFAULT_TOKENIZER, load_tokenizer
    from longtasks.version import GENERATOR_VERSION


def __getattr__(name: str) -> Any:
    target = _ALIASES.get(name, name)
    if target not in _EXPORTS:
        raise AttributeError(f"module 'longtasks' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[target]), target)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_TOKENIZER",
    "GENERATOR_VERSION",
    "Sample",
    "config_name",
    "export",
    "format_length",
    "generate",
    "generate_samples",
    "generate_to_dir",
    "get_task",
    "list_families",
    "list_tasks",
    "load_tokenizer",
    "parse_length",
    "parse_lengths",
    "push",
    "read_manifest",
    "score",
    "score_prediction",
]
assert set(__all__) == set(_EXPORTS) | set(_ALIASES)
