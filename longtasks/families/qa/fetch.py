"""Download the QA tasks' Hub datasets into the local `datasets` cache, once, at their pinned commits.

    python -m longtasks.families.qa.fetch                 # qa_squad and qa_quality
    python -m longtasks.families.qa.fetch qa_squad

Generation reads these only from the cache (it never downloads), so a machine that ran this once (or that
shares the cache folder, ``HF_DATASETS_CACHE``) generates offline. TOEFL-QA has no Hub copy: its task takes
a local file or URL instead. Exit status 2 with one line on stderr when a download fails.
"""

from __future__ import annotations

import argparse
import sys

from longtasks.families.qa.source import SourceError, parse_source
from longtasks.registry import get_task, list_tasks


def fetch(task: str) -> str:
    """Download `task`'s pinned Hub dataset; return a line saying what is now cached."""
    import datasets

    spec = get_task(task)
    hub = getattr(spec, "hub_source", None)
    if hub is None:
        return f"{task}: no Hub copy to fetch. {spec.no_source}"
    source = parse_source(task, hub)
    try:
        rows = datasets.load_dataset(source.location, split=spec.split, revision=source.revision)
    except Exception as error:  # network, authentication or Hub errors: one line, with what to check
        reason = " ".join(str(error).split())[:300]
        raise SourceError(
            f"{task}: could not download {source.location} at revision {source.revision} ({type(error).__name__}: "
            f"{reason}); check the network, HF_HUB_OFFLINE / HF_DATASETS_OFFLINE and HF_ENDPOINT"
        ) from None
    _, pool = spec.load(spec.make_knobs({"source": hub}))
    return (
        f"{task}: cached {source.location}@{source.revision} ({spec.split}, {len(rows)} rows; "
        f"{len(pool.documents)} documents with questions, content sha256 {pool.sha256})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="*", help="QA tasks to fetch (default: every QA task with a Hub copy)")
    args = parser.parse_args(argv)
    tasks = args.tasks or [t for t in list_tasks("qa") if t != "qa_toefl"]
    try:
        for task in tasks:
            if task not in list_tasks("qa"):
                raise ValueError(f"{task!r} is not a QA task; QA tasks: {', '.join(list_tasks('qa'))}")
            print(fetch(task))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
