"""longtasks: exact-length natural-language long-context tasks with exact scorers.

Public API::

    longtasks.generate(task, length, num_samples, seed=0, tokenizer=None, chat=False, knobs=None)
    longtasks.generate_to_dir(out_dir, tasks, lengths, num_samples=..., ...)
    longtasks.score(predictions, dataset)
    longtasks.list_tasks(), longtasks.get_task(name), longtasks.load_tokenizer(name=None)
    longtasks.export(out_dir), longtasks.push(out_dir, repo_id, private=False, token=None, dry_run=False)
"""

from typing import Any

from longtasks.dataset_dir import config_name, generate_to_dir, read_manifest
from longtasks.generate import generate_samples
from longtasks.lengths import format_length, parse_length, parse_lengths
from longtasks.registry import get_task, list_tasks
from longtasks.sample import Sample
from longtasks.scoring import score, score_prediction
from longtasks.tokenizer import DEFAULT_TOKENIZER, load_tokenizer
from longtasks.version import GENERATOR_VERSION

generate = generate_samples


def __getattr__(name: str) -> Any:
    # The Hub client costs ~0.6 s to import; only load it when publishing.
    if name in ("export", "push"):
        import longtasks.hub as hub

        return getattr(hub, name)
    raise AttributeError(f"module 'longtasks' has no attribute {name!r}")


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
    "list_tasks",
    "load_tokenizer",
    "parse_length",
    "parse_lengths",
    "push",
    "read_manifest",
    "score",
    "score_prediction",
]
