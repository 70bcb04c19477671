"""The architecture numbers the cost model needs, read from a Hugging Face `config.json`."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

WINDOW_COLUMNS = ("sliding_window", "n_local_layers")
"""Sliding-window attention: 0 and 0 for a model whose every layer attends to the whole sequence."""
ARCH_COLUMNS = (
    "n_layers",
    "hidden_size",
    "n_heads",
    "n_kv_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    *WINDOW_COLUMNS,
)
SLIDING = "sliding_attention"
"""The `layer_types` entry of a local layer in transformers' configs (the other is "full_attention")."""
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "gemma3_text": {
        "head_dim": 256,
        "vocab_size": 262208,
        "sliding_window": 4096,
        "sliding_window_pattern": 6,
    },
}
"""transformers' class defaults that Hub `config.json` files leave out (Gemma 3's `text_config` has no
vocab_size, and no head_dim where it is 256, which is not hidden_size / heads)."""


@dataclass(frozen=True)
class Arch:
    """A decoder-only transformer as the paper's cost formulas see it (PAPER_NOTES §1.2 symbols:
    N = n_layers, d = hidden_size, h = n_heads, n_kv = n_kv_heads, d_h = head_dim, d_mlp, |V|), plus the
    sliding window that Gemma 3 uses in 5 of every 6 layers (PAPER_NOTES §4.1)."""

    n_layers: int
    hidden_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    sliding_window: int = 0
    """Keys a local layer's query attends to (its last W tokens); 0 when no layer is local."""
    n_local_layers: int = 0
    """Layers that attend through the sliding window; sparse methods act only on the other (global) ones."""

    def __post_init__(self) -> None:
        if not 0 <= self.n_local_layers <= self.n_layers:
            raise ValueError(
                f"n_local_layers must be between 0 and n_layers={self.n_layers}, got {self.n_local_layers}"
            )
        if self.n_local_layers and self.sliding_window < 1:
            raise ValueError(
                f"{self.n_local_layers} local layer(s) need a sliding_window >= 1 token, got {self.sliding_window}"
            )

    @property
    def n_global_layers(self) -> int:
        """Layers that attend to the whole sequence: the only ones the paper sparsifies."""
        return self.n_layers - self.n_local_layers

    def local_span(self, length: int) -> int:
        """Tokens a local layer attends to (and caches) at sequence length `length`: min(L, W)."""
        return min(length, self.sliding_window) if self.n_local_layers else length

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Arch:
        """From a config dict; multimodal configs (Gemma 3) are read from their `text_config`."""
        config = _text_config(config)
        try:
            heads = int(config["num_attention_heads"])
            hidden = int(config["hidden_size"])
            head_dim = config.get("head_dim") or hidden // heads
            n_layers = int(config["num_hidden_layers"])
            window, n_local = local_layers(config, n_layers)
            return cls(
                n_layers=n_layers,
                hidden_size=hidden,
                n_heads=heads,
                n_kv_heads=int(config.get("num_key_value_heads") or heads),
                head_dim=int(head_dim),
                intermediate_size=int(config["intermediate_size"]),
                vocab_size=int(config["vocab_size"]),
                sliding_window=window,
                n_local_layers=n_local,
            )
        except KeyError as error:
            raise ValueError(
                f"model config has no {error.args[0]!r}; the cost model needs num_hidden_layers, hidden_size, "
                "num_attention_heads, intermediate_size and vocab_size (a decoder-only Hugging Face config)"
            ) from None

    @classmethod
    def from_file(cls, path: Path) -> Arch:
        return cls.from_config(json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Arch:
        """From a results-table row holding the ARCH_COLUMNS (absent or empty window columns: no window)."""
        values = {name: int(row[name]) for name in ARCH_COLUMNS if name not in WINDOW_COLUMNS}
        return cls(**values, **{name: _window_cell(row.get(name)) for name in WINDOW_COLUMNS})

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _window_cell(value: Any) -> int:
    """A window column's cell: absent (a table saved before the column existed) or empty means no window."""
    return 0 if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def _text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The language model's part of `config`, with its family's omitted defaults filled in."""
    model_type = config.get("model_type")
    if "text_config" in config and "num_hidden_layers" not in config:
        text = config["text_config"]
        model_type = text.get("model_type") or ("gemma3_text" if model_type == "gemma3" else None)
        config = text
    return {**FAMILY_DEFAULTS.get(str(model_type), {}), **config}


def local_layers(config: Mapping[str, Any], n_layers: int) -> tuple[int, int]:
    """(sliding window, number of layers using it), following transformers' rules: `layer_types` when given;
    else Gemma 3's `sliding_window_pattern` p (every p-th layer global); else Qwen2's `use_sliding_window`
    (layers from `max_window_layers` on); else Gemma 2 alternating; else a window on every layer (Mistral)."""
    window = config.get("sliding_window")
    if not window or config.get("use_sliding_window") is False:
        return 0, 0
    if isinstance(window, bool) or not isinstance(window, int | float) or window < 1 or window != int(window):
        raise ValueError(f"sliding_window must be a positive whole number of tokens or null, got {window!r}")
    n_local = _count_local(config, n_layers)
    return (int(window), n_local) if n_local else (0, 0)


def _count_local(config: Mapping[str, Any], n_layers: int) -> int:
    types = config.get("layer_types")
    if types is not None:
        if len(types) != n_layers:
            raise ValueError(
                f"layer_types lists {len(types)} layers but num_hidden_layers is {n_layers}: one entry per layer"
            )
        return sum(kind == SLIDING for kind in types)
    pattern = config.get("sliding_window_pattern")
    pattern = config.get("_sliding_window_pattern") if pattern is None else pattern
    if pattern is not None:
        if isinstance(pattern, bool) or not isinstance(pattern, int) or pattern < 1:
            raise ValueError(
                f"sliding_window_pattern must be an integer >= 1 (every p-th layer global), got {pattern!r}"
            )
        return n_layers - n_layers // pattern
    if config.get("use_sliding_window") and config.get("max_window_layers") is not None:
        return max(0, n_layers - int(config["max_window_layers"]))
    if config.get("model_type") == "gemma2":
        return n_layers - n_layers // 2
    return n_layers
