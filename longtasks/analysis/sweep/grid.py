"""The sweep's grid: what to run (a spec) and its cells, each with its own output folder.

A cell is one (model, method, compression, length); every task runs in it. Each model gets one dense cell per
length (`method=dense`, compression 1) as the baseline every sparse cell is compared with.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from longtasks.analysis.methods import DENSE

RESULT_SETTINGS = (
    "tasks",
    "num_samples",
    "seed",
    "chat",
    "gen_kwargs",
    "model_type",
    "model_args",
    "method_args",
)
"""Spec fields that change what a cell measures: a resumed sweep must keep them (the grid axes may grow)."""

SECRET_MODEL_ARGS = frozenset({"token", "use_auth_token", "hf_token"})
"""Model args that hold credentials (a gated model's Hub token): passed to the model, never written or compared."""


def public_model_args(model_args: dict[str, Any]) -> dict[str, Any]:
    """`model_args` without credentials: what sweep.json, the cells' results and error messages may show."""
    return {key: value for key, value in model_args.items() if key not in SECRET_MODEL_ARGS}


@dataclass(frozen=True)
class SweepSpec:
    models: tuple[str, ...]
    methods: tuple[str, ...]
    compressions: tuple[float, ...]
    lengths: tuple[int, ...]
    tasks: tuple[str, ...] = ("longtasks_all",)
    num_samples: int = 100
    seed: int = 0
    chat: bool = False
    gen_kwargs: str | None = None
    device: str | None = None
    model_type: str = "sparse-hf"
    model_args: dict[str, Any] = field(default_factory=dict)
    """Extra model arguments for every cell (dtype, trust_remote_code, ...)."""
    method_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    """METHOD -> its extra fields (e.g. {"flexprefill": {"min_budget": 64}})."""
    dense: bool = True

    def __post_init__(self) -> None:
        for name in ("models", "lengths", "tasks"):
            if not getattr(self, name):
                raise ValueError(f"the sweep needs at least one of --{name}")
        if self.methods and not self.compressions:
            raise ValueError("sparse methods need --compressions (e.g. 2,5,10)")
        # finite too: sparse_eval refuses inf/nan, which would otherwise fail only after the dense cells ran
        bad = [c for c in self.compressions if not (math.isfinite(c) and c >= 1.0)]
        if bad:
            raise ValueError(f"compressions must be >= 1 and finite (1 = dense; e.g. 2,5,10), got {bad}")
        if self.methods and not any(c > 1.0 for c in self.compressions):
            raise ValueError(
                f"--compressions {list(self.compressions)} has no ratio > 1 for the sparse methods: compression 1 "
                "is the dense run (made unless --no-dense); give e.g. 2,5,10"
            )
        unknown = sorted(set(self.method_args) - set(self.methods))
        if unknown:
            raise ValueError(
                f"--method-arg names method(s) {unknown} that are not in --methods {list(self.methods)}"
            )
        if self.model_type != "sparse-hf" and any(m != DENSE for m in self.methods):
            raise ValueError(f"sparse methods run under --model-type sparse-hf, not {self.model_type!r}")

    def max_gen_toks(self) -> int | None:
        """The generation budget the user set in --gen-kwargs (None: each task's own)."""
        pairs = dict(part.split("=", 1) for part in (self.gen_kwargs or "").split(",") if "=" in part)
        value = pairs.get("max_gen_toks")
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"max_gen_toks in --gen-kwargs must be a whole number, got {value!r}") from None

    def settings(self) -> dict[str, Any]:
        data = self.to_dict()
        return {key: data[key] for key in RESULT_SETTINGS}

    def to_dict(self) -> dict[str, Any]:
        """The spec as written to sweep.json: credentials left out (a new token must not block a resume)."""
        return {**asdict(self), "model_args": public_model_args(self.model_args)}


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _no_leading_dot(text: str) -> str:
    return re.sub(r"^[._]+", "", _safe(text))


def model_folder(model: str) -> str:
    """A folder name for `model`: path parts joined by `__`, `.` dropped, `..` as `up`, no leading dot."""
    parts = ["up" if part == ".." else _no_leading_dot(part) for part in model.split("/")]
    return _no_leading_dot("__".join(part for part in parts if part)) or "model"


@dataclass(frozen=True)
class Cell:
    model: str
    method: str
    compression: float
    length: int

    @property
    def relative_dir(self) -> Path:
        """The cell's folder under `cells/`. Never starts with a dot: `./m` is `m`, `../m` is `up__m` (a hidden
        folder would be mistaken for a cell being written)."""
        return Path(model_folder(self.model)) / f"{self.method}-c{self.compression:g}" / f"L{self.length}"

    @property
    def legacy_dir(self) -> Path:
        """The folder earlier versions used (`./m` -> `.__m`): a sweep started by them still resumes."""
        model = _safe(self.model.replace("/", "__")) or "model"
        return Path(model) / f"{self.method}-c{self.compression:g}" / f"L{self.length}"

    def label(self) -> str:
        return f"{Path(self.model).name} {self.method} {self.compression:g}x @ {self.length}"


def cells(spec: SweepSpec) -> list[Cell]:
    """Every cell of the grid: dense baselines first, then each sparse method at each compression > 1."""
    out = []
    for model in spec.models:
        if spec.dense:
            out += [Cell(model, DENSE, 1.0, length) for length in spec.lengths]
        for method in spec.methods:
            if method == DENSE:
                continue
            for compression in spec.compressions:
                if compression > 1.0:
                    out += [Cell(model, method, float(compression), length) for length in spec.lengths]
    return list(dict.fromkeys(out))
