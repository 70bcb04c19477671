"""Shared look and file handling: readable defaults, PNG + SVG written atomically, a note in empty panels."""

from __future__ import annotations

import json
import re
import textwrap
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from longtasks.analysis import _deps
from longtasks.analysis.io import write_with
from longtasks.analysis.methods import DENSE

RC = {
    "figure.dpi": 100, "savefig.dpi": 100, "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10,
    "legend.fontsize": 8, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
}  # fmt: skip
FORMATS = ("png", "svg")


def slug(text: str) -> str:
    """A file-name-safe version of a model name or path."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "model"


def model_names(models: Iterable[Any]) -> dict[Any, tuple[str, str]]:
    """Per model, (title, file-name part): its last path part where no other model shares it, else the whole
    name or path (`/ckpts/run-a/final` and `/ckpts/run-b/final` must not write to the same file)."""
    models = list(dict.fromkeys(models))
    short = {model: Path(str(model)).name or str(model) for model in models}
    counts = Counter(short.values())
    titles = {model: short[model] if counts[short[model]] == 1 else str(model) for model in models}
    stems: dict[Any, tuple[str, str]] = {}
    used: Counter[str] = Counter()
    for model in models:
        stem = slug(titles[model])
        used[stem] += 1
        stems[model] = (titles[model], stem if used[stem] == 1 else f"{stem}_{used[stem]}")
    return stems


def figure(rows: int, cols: int, width: float = 4.0, height: float = 3.2) -> tuple[Any, Any]:
    plt = _deps.pyplot()
    with plt.rc_context(RC):
        fig, axes = plt.subplots(
            rows, cols, figsize=(width * cols, height * rows), squeeze=False, layout="constrained"
        )
    return fig, axes


def save(fig: Any, out_dir: Path, stem: str) -> list[Path]:
    """Write `stem`.png and `stem`.svg under `out_dir`; close the figure."""
    plt = _deps.pyplot()
    paths = []
    with plt.rc_context(RC):
        for fmt in FORMATS:
            path = Path(out_dir) / f"{stem}.{fmt}"
            write_with(path, lambda tmp, fmt=fmt: fig.savefig(tmp, format=fmt, bbox_inches="tight"))
            paths.append(path)
    plt.close(fig)
    return paths


def note(ax: Any, text: str) -> None:
    """Say in an empty panel why it is empty."""
    wrapped = "\n".join(textwrap.fill(line, 44) for line in text.splitlines())
    ax.text(0.5, 0.5, wrapped, ha="center", va="center", transform=ax.transAxes, fontsize=8, color="0.35")
    ax.set_axis_off()


def log_ticks(ax: Any, values: Any, axis: str = "y") -> None:
    """Plain-number ticks (1, 2, 5, 10, 20 ...) on a log axis, covering `values`."""
    candidates = [1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 100, 200, 500, 1000]
    finite = [float(v) for v in values if v == v]
    if not finite:
        return
    low, high = min(finite), max(finite)
    ticks = [t for t in candidates if low / 1.01 <= t <= high * 1.01] or [low]
    (ax.set_yticks if axis == "y" else ax.set_xticks)(ticks, [f"{t:g}" for t in ticks])


def hide_unused(axes: Any, used: int) -> None:
    for ax in axes.flat[used:]:
        ax.set_visible(False)


def length_label(tokens: float) -> str:
    tokens = int(tokens)
    return f"{tokens // 1024}k" if tokens % 1024 == 0 and tokens >= 1024 else str(tokens)


def args_label(method_args: Any) -> str:
    """`{"share_pages": false}` as `share_pages=False` ("" for none)."""
    text = "" if method_args is None or method_args != method_args else str(method_args)
    try:
        fields = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return text
    if not isinstance(fields, dict):
        return text
    return ",".join(f"{key}={value}" for key, value in fields.items())


def with_variant_labels(frame: Any) -> Any:
    """`frame` with each sparse method run under its own arguments named `method[args]`, so a plot draws the
    variants apart instead of averaging them (the dense baseline keeps its name)."""
    if "method_args" not in frame or frame.empty:
        return frame
    labels = [
        f"{method}[{args_label(args)}]" if method != DENSE and args_label(args) else method
        for method, args in zip(frame["method"], frame["method_args"], strict=True)
    ]
    return frame.assign(method=labels)
