"""Means with 95 % confidence intervals, overall and broken down by task, length and evidence depth.

Interval: percentile bootstrap of the mean (1000 resamples, fixed seed, so reports are reproducible).
Why not a normal/t interval: scores are bounded in [0, 1] and mostly 0/1, and near 0 or 1 a symmetric
interval spills outside [0, 1]; the bootstrap interval always stays inside the observed range and
follows the skew. Known limit: with n = 1 or all scores equal every resample has the same mean, so the
interval collapses to the mean — read `n` next to it; such intervals say nothing about uncertainty.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

CI_LEVEL = 0.95
CI_RESAMPLES = 1000
CI_SEED = 0
DEPTH_BINS = ("[0.0,0.2)", "[0.2,0.4)", "[0.4,0.6)", "[0.6,0.8)", "[0.8,1.0]")
NO_DEPTH = "none"
"""Bin label for rows whose evidence_depths is empty (no evidence position to report)."""
_MAX_DRAWS_PER_CHUNK = 2_000_000


@dataclass(frozen=True)
class MeanCI:
    mean: float
    low: float
    high: float
    n: int


@dataclass
class GroupSummary:
    """Aggregates of one group; `task`/`length`/`depth_bin` are None where the group spans them all."""

    task: str | None
    length: int | None
    depth_bin: str | None
    n: int
    missing: int
    unparsed: int
    score: MeanCI
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Summary:
    overall: GroupSummary
    by_task: list[GroupSummary]
    by_task_length: list[GroupSummary]
    by_depth: list[GroupSummary]
    by_task_depth: list[GroupSummary]
    ci: dict[str, Any]
    by_question_depth: list[GroupSummary] = field(default_factory=list)
    """List answers (one per question) scored question by question, binned by each question's own
    evidence depth: a 16-question sample's mean depth is always near the middle, its questions are not."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mean_ci(
    values: Sequence[float],
    *,
    level: float = CI_LEVEL,
    resamples: int = CI_RESAMPLES,
    seed: int = CI_SEED,
    clusters: Sequence[Hashable] | None = None,
) -> MeanCI:
    """Mean of `values` with a percentile-bootstrap interval (see the module docstring).

    With `clusters` (e.g. the sample each question belongs to) whole clusters are resampled: questions
    of one prompt are not independent, and resampling them one by one would make the interval too narrow."""
    if clusters is not None:
        return _cluster_mean_ci(values, clusters, level=level, resamples=resamples, seed=seed)
    scores = np.asarray(values, dtype=float)
    if scores.size == 0:
        raise ValueError("cannot average an empty group of scores")
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level {level!r} must be strictly between 0 and 1, e.g. 0.95")
    if resamples < 1:
        raise ValueError(f"bootstrap resamples {resamples!r} must be at least 1, e.g. 1000")
    mean = float(scores.mean())
    if scores.size == 1 or bool(np.all(scores == scores[0])):
        return MeanCI(mean, mean, mean, int(scores.size))
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, _MAX_DRAWS_PER_CHUNK // scores.size)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        draws = rng.integers(0, scores.size, size=(stop - start, scores.size))
        means[start:stop] = scores[draws].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return MeanCI(mean, min(float(low), mean), max(float(high), mean), int(scores.size))


def _cluster_mean_ci(
    values: Sequence[float], clusters: Sequence[Hashable], *, level: float, resamples: int, seed: int
) -> MeanCI:
    """Mean over all values; interval from resampling clusters (sum and count per cluster)."""
    if len(values) != len(clusters):
        raise ValueError(f"{len(values)} values but {len(clusters)} cluster labels")
    index = {label: i for i, label in enumerate(dict.fromkeys(clusters))}
    ids = np.array([index[label] for label in clusters])
    sums = np.bincount(ids, weights=np.asarray(values, dtype=float), minlength=len(index))
    counts = np.bincount(ids, minlength=len(index)).astype(float)
    mean = float(sums.sum() / counts.sum())
    if len(index) == 1:
        return MeanCI(mean, mean, mean, len(values))
    draws = np.random.default_rng(seed).integers(0, len(index), size=(resamples, len(index)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return MeanCI(mean, min(float(low), mean), max(float(high), mean), len(values))


def depth_bin(evidence_depths: Sequence[float]) -> str:
    """Quintile bin of the mean evidence depth (0 = start of the context, 1 = end)."""
    depths = list(evidence_depths)
    if not depths:
        return NO_DEPTH
    for depth in depths:
        if not 0.0 <= depth <= 1.0:
            raise ValueError(
                f"evidence depth {depth!r} is outside [0, 1] (depths are fractions of the context)"
            )
    mean = sum(depths) / len(depths)
    return DEPTH_BINS[min(int(mean * len(DEPTH_BINS)), len(DEPTH_BINS) - 1)]


def _summarise_group(
    rows: Sequence[Mapping[str, Any]], key: dict[str, Any], metric_keys: Sequence[str], ci: dict[str, Any]
) -> GroupSummary:
    metrics: dict[str, float] = {}
    for name in metric_keys:
        present = [float(row[name]) for row in rows if name in row and name != "score"]
        if present:
            metrics[name] = sum(present) / len(present)
    return GroupSummary(
        task=key.get("task"),
        length=key.get("length"),
        depth_bin=key.get("depth_bin"),
        n=len(rows),
        missing=sum(bool(row.get("missing")) for row in rows),
        unparsed=sum(not row.get("missing") and float(row.get("parsed", 0.0)) == 0.0 for row in rows),
        score=mean_ci(
            [float(row["score"]) for row in rows],
            level=ci["level"],
            resamples=ci["resamples"],
            seed=ci["seed"],
            clusters=[row["cluster"] for row in rows] if rows and "cluster" in rows[0] else None,
        ),
        metrics=metrics,
    )


def _grouped(
    rows: Sequence[Mapping[str, Any]],
    fields: tuple[str, ...],
    metric_keys: Sequence[str],
    ci: dict[str, Any],
    order: Callable[[tuple[Hashable, ...]], Any],
) -> list[GroupSummary]:
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[name] for name in fields)].append(row)
    return [
        _summarise_group(groups[key], dict(zip(fields, key, strict=True)), metric_keys, ci)
        for key in sorted(groups, key=order)
    ]


def _depth_order(label: Any) -> int:
    return DEPTH_BINS.index(label) if label in DEPTH_BINS else len(DEPTH_BINS)


def summarize(
    rows: Sequence[Mapping[str, Any]],
    *,
    metric_keys: Sequence[str],
    group_by_depth: bool = True,
    level: float = CI_LEVEL,
    resamples: int = CI_RESAMPLES,
    seed: int = CI_SEED,
) -> Summary:
    """Aggregate per-sample rows (keys: task, length, depth_bin, missing, score, other metrics).

    Metrics other than "score" are plain means over the rows that have them (set metrics exist only for
    set tasks), without intervals, to keep the bootstrap cost on the headline number.
    """
    if not rows:
        raise ValueError("no scored rows to summarise: the dataset is empty")
    ci = {"method": "percentile bootstrap of the mean", "level": level, "resamples": resamples, "seed": seed}
    by_depth: list[GroupSummary] = []
    by_task_depth: list[GroupSummary] = []
    by_question_depth: list[GroupSummary] = []
    questions = question_rows(rows)
    if group_by_depth and questions:
        by_question_depth = _grouped(
            questions, ("task", "depth_bin"), ("score", "parsed"), ci, lambda k: (k[0], _depth_order(k[1]))
        )
    if group_by_depth:
        by_depth = _grouped(rows, ("depth_bin",), metric_keys, ci, lambda k: _depth_order(k[0]))
        by_task_depth = _grouped(
            rows, ("task", "depth_bin"), metric_keys, ci, lambda k: (k[0], _depth_order(k[1]))
        )
    return Summary(
        overall=_summarise_group(rows, {}, metric_keys, ci),
        by_task=_grouped(rows, ("task",), metric_keys, ci, lambda k: k),
        by_task_length=_grouped(rows, ("task", "length"), metric_keys, ci, lambda k: k),
        by_depth=by_depth,
        by_task_depth=by_task_depth,
        ci=ci,
        by_question_depth=by_question_depth,
    )


def question_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per question of the rows that carry `question_scores` and matching `question_depths`; the
    sample id is kept as the resampling cluster of the interval."""
    out = []
    for row in rows:
        scores, depths = row.get("question_scores"), row.get("question_depths")
        if not scores or not depths or len(scores) != len(depths):
            continue
        for score, depth in zip(scores, depths, strict=True):
            out.append({
                "task": row["task"], "length": row["length"], "depth_bin": depth_bin([depth]), "cluster": row["id"],
                "score": score, "missing": row.get("missing", False), "parsed": row.get("parsed", 0.0),
            })  # fmt: skip
    return out
