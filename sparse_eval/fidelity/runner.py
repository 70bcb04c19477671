"""The fidelity measurement: every method x compression on captured or synthetic attention, plus (with a
model) next-token KL and argmax agreement against dense; rows ready for a table or JSON.

A case is one sequence: every layer's q/k/v over a prompt followed by a few decode rows (a gold answer
for a real model, the last positions for synthetic input). Prefill methods are scored on the prompt rows,
Quest and the KV methods on the decode rows, each with the achieved compression of its own phase.
"""

from __future__ import annotations

import ast
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from sparse_eval.base import SparseMethod
from sparse_eval.compression import SHORTFALL_RATIO, causal_pairs
from sparse_eval.fidelity.capture import LayerQKV
from sparse_eval.fidelity.metrics import Fidelity, patterns_fidelity, rows_fidelity
from sparse_eval.fidelity.model_eval import DensePrefill, continuation_logits, kl_and_agreement
from sparse_eval.fidelity.selections import RowSelection, kv_rows, prefill_pattern, quest_rows
from sparse_eval.methods.pattern_method import PatternPrefillMethod
from sparse_eval.methods.quest import Quest
from sparse_eval.registry import get_method

DEFAULT_SPECS = (
    "vertical_slash",
    "vertical_slash:q_block_size=64",
    "block_sparse",
    "block_sparse:q_block_size=128,block_size=64",
    "block_sparse:q_block_size=128,block_size=64,sink_blocks=0,local_blocks=0",
    "flexprefill",
    "quest",
    "quest:share_pages=False",
    "snapkv",
    "ada_snapkv",
)
"""Every method with its defaults, plus the named options the audit compares (sparse_eval/README.md)."""


@dataclass(frozen=True)
class MethodSpec:
    """A registered method name with fixed keyword arguments, e.g. "block_sparse:q_block_size=128"."""

    name: str
    kwargs: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(cls, text: str, compressions: Iterable[float] = (1.0,)) -> MethodSpec:
        """Parse `text` and build the method at every one of `compressions`, so unknown names, bad
        arguments and compressions a method refuses (c < 1, dense at c != 1) fail here, before any work."""
        name, _, rest = text.partition(":")
        kwargs = []
        for item in filter(None, rest.split(",")):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"method spec {text!r}: expected key=value, got {item!r}")
            try:
                parsed = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                parsed = value
            kwargs.append((key.strip(), parsed))
        spec = cls(name.strip(), tuple(kwargs))
        for c in compressions:
            spec.build(c)
        return spec

    @property
    def label(self) -> str:
        return self.name + (":" + ",".join(f"{k}={v}" for k, v in self.kwargs) if self.kwargs else "")

    def build(self, compression: float, backend: str = "reference") -> SparseMethod:
        return get_method(self.name, compression=compression, backend=backend, **dict(self.kwargs))


@dataclass
class Case:
    """One sequence to score: `layers` hold q/k/v over the prompt and then the decode rows."""

    source: str
    prompt_len: int
    layers: list[LayerQKV]


@dataclass
class _Tally:
    fidelity: list[Fidelity] = field(default_factory=list)
    dense: float = 0.0
    attended: float = 0.0
    kl: list[float] = field(default_factory=list)
    agree: list[float] = field(default_factory=list)
    model_achieved: list[float] = field(default_factory=list)


Tallies = dict[tuple[str, int, str, float], _Tally]

Progress = Callable[[str], None]
"""Told one line of text after each unit of work (a layer, a method at one compression): the caller logs it."""


def new_tallies() -> Tallies:
    """Accumulators keyed by (source, prompt length, method label, compression)."""
    return defaultdict(_Tally)


def attention_fidelity(
    tallies: Tallies,
    cases: Iterable[Case],
    specs: Sequence[MethodSpec],
    compressions: Sequence[float],
    progress: Progress | None = None,
) -> None:
    """Add each case's per-layer fidelity and compression counts to `tallies`. A decode or KV method on a
    case without decode rows is an error (it would silently give no row)."""
    for case in cases:
        P = case.prompt_len
        for n, layer in enumerate(case.layers, 1):
            q, k, v = layer.query, layer.key, layer.value
            if not 1 <= P <= q.shape[-2]:
                raise ValueError(
                    f"case {case.source!r}: prompt length {P} must be 1..{q.shape[-2]} (the rows captured)"
                )
            patterns, pattern_keys, rows, row_keys = [], [], [], []
            for spec in specs:
                for c in compressions:
                    method = spec.build(c)
                    key = (case.source, P, spec.label, c)
                    if method.phase == "dense":  # keeps every pair: the exact trivial row, nothing to score
                        tallies[key].fidelity.append(_all_kept(q.shape[1], P))
                        dense = attended = float(causal_pairs(P) * q.shape[1] * q.shape[0])
                    elif isinstance(method, PatternPrefillMethod):
                        pattern, dense, attended = prefill_pattern(
                            method, q[..., :P, :], k[..., :P, :], layer.scaling, layer.layer_idx
                        )
                        patterns.append(pattern)
                        pattern_keys.append(key)
                    elif q.shape[-2] > P:
                        selection = _decode_selection(method, q, k, v, P, layer.scaling)
                        rows.append(selection.keep)
                        row_keys.append(key)
                        dense, attended = selection.dense, selection.attended
                    else:
                        raise ValueError(
                            f"{spec.label} scores decode rows, but case {case.source!r} at length {P} has "
                            "none after its prompt: give it at least one decode row"
                        )
                    tallies[key].dense += dense
                    tallies[key].attended += attended
            scored = patterns_fidelity(q[..., :P, :], k[..., :P, :], v[..., :P, :], patterns, layer.scaling)
            if rows:
                positions = torch.arange(P, q.shape[-2], device=q.device)
                scored += rows_fidelity(q[..., P:, :], k, v, layer.scaling, positions, rows)
            for key, fid in zip(pattern_keys + row_keys, scored, strict=True):
                tallies[key].fidelity.append(fid)
            if progress is not None:
                selections = len(pattern_keys) + len(row_keys)
                progress(f"attention layer {n}/{len(case.layers)} scored ({selections} selections)")


def _all_kept(heads: int, rows: int) -> Fidelity:
    """What dense attention scores against itself: recall exactly 1 and error exactly 0 on every head."""
    ones = torch.ones(heads, dtype=torch.float64)
    return Fidelity(mass=ones * rows, err_sq=torch.zeros_like(ones), ref_sq=ones, rows=rows)


def _decode_selection(
    method: SparseMethod, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prompt_len: int, scaling: float
) -> RowSelection:
    if isinstance(method, Quest):
        return quest_rows(method, q, k, prompt_len)
    if method.phase == "kv":
        return kv_rows(method, q, k, v, prompt_len, scaling)
    raise NotImplementedError(f"no fidelity selection for {method.name!r} (phase {method.phase!r})")


def model_fidelity(
    tallies: Tallies,
    model: Any,
    source: str,
    prompt_ids: torch.Tensor,
    answer_ids: torch.Tensor,
    dense: DensePrefill,
    specs: Sequence[MethodSpec],
    compressions: Sequence[float],
    progress: Progress | None = None,
) -> None:
    """Add next-token KL and argmax agreement vs dense over the teacher-forced answer to `tallies`;
    `progress` hears of each (method, compression) as it finishes (each is a model run: minutes at 2k)."""
    reference, _ = continuation_logits(model, prompt_ids, answer_ids, get_method("dense"), dense)
    total, done = len(specs) * len(compressions), 0
    for spec in specs:
        for c in compressions:
            method = spec.build(c)
            logits, report = continuation_logits(model, prompt_ids, answer_ids, method, dense)
            kl, agree = kl_and_agreement(reference, logits)
            tally = tallies[(source, prompt_ids.shape[-1], spec.label, c)]
            tally.kl.append(kl)
            tally.agree.append(agree)
            # dense records no phase of its own: it attends everything, 1x by definition
            achieved = 1.0 if method.phase == "dense" else report.achieved_compression(method.phase)
            tally.model_achieved.append(achieved)
            done += 1
            if progress is not None:
                progress(f"model {done}/{total}: {spec.label} c={c:g}: KL {kl:.3f}, agreement {agree:.2f}")


def summarize(tallies: Tallies) -> list[dict[str, Any]]:
    """One JSON-ready row per (source, length, method, compression): achieved compression, mean (over layers
    and heads) mass recall and output error, worst layer's mean error, and mean KL / agreement if measured.
    A value that is not a finite number (nothing attended, say) is None, never NaN."""
    rows = []
    for (source, length, label, c), t in tallies.items():
        row: dict[str, Any] = {"source": source, "length": length, "method": label, "compression": c}
        if t.fidelity:
            recalls = torch.stack([f.recall for f in t.fidelity])
            errors = torch.stack([f.rel_error for f in t.fidelity])
            row.update(
                achieved=_finite(t.dense / t.attended if t.attended else math.nan),
                recall=_finite(float(recalls.mean())),
                error=_finite(float(errors.mean())),
                worst_layer_error=_finite(float(errors.mean(-1).max())),
            )
        if t.kl:
            row.update(
                kl=_finite(sum(t.kl) / len(t.kl)),
                agreement=_finite(sum(t.agree) / len(t.agree)),
                model_achieved=_finite(sum(t.model_achieved) / len(t.model_achieved)),
                samples=len(t.kl),
            )
        rows.append(row)
    return rows


def _finite(value: float) -> float | None:
    """None for NaN or infinity: JSON has no such numbers (json.dumps would write an invalid bare NaN)."""
    return value if math.isfinite(value) else None


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown tables, one per (source, length)."""
    out = []
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["source"], row["length"])].append(row)
    for (source, length), group in groups.items():
        has_model = any("kl" in r for r in group)
        columns = ["method", "c", "achieved", "mass recall", "output error", "worst layer"]
        columns += ["next-token KL", "agreement"] if has_model else []
        out += [f"\n{source}, prompt length {length}\n", "| " + " | ".join(columns) + " |"]
        out.append("|" + "---|" * len(columns))
        for r in group:
            cells = [
                r["method"],
                f"{r['compression']:g}",
                _num(r.get("achieved", r.get("model_achieved")), 2) + _short_mark(r),
                _num(r.get("recall"), 3),
                _num(r.get("error"), 3),
                _num(r.get("worst_layer_error"), 3),
            ]
            if has_model:
                cells += [_num(r.get("kl"), 3), _num(r.get("agreement"), 3)]
            out.append("| " + " | ".join(cells) + " |")
    if any(_short_mark(r) for r in rows):
        out.append(
            f"\n* achieved below {SHORTFALL_RATIO:g} x the requested c: the method's floor at this length"
        )
    return "\n".join(out)


def _short_mark(row: dict[str, Any]) -> str:
    achieved = row.get("achieved", row.get("model_achieved"))
    return "*" if achieved is not None and achieved < SHORTFALL_RATIO * row["compression"] else ""


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"
