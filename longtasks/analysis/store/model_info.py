"""A run's model: its name, parameter count and architecture (for the cost model), found without network.

The architecture comes from, in order: a `model_config.json` the sweep saved beside the results, the
`config.json` in a local `pretrained` folder, the Hugging Face cache. A model found in none of them keeps empty
architecture columns, and the cost-based analyses skip it with a note.
"""

from __future__ import annotations

import json
import logging
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longtasks.analysis.arch import Arch

log = logging.getLogger(__name__)
MODEL_CONFIG_FILE = "model_config.json"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    n_params: float
    arch: Arch | None


def _cached_config(repo_id: str, revision: str | None) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub is a core dependency
        return None
    try:
        found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except Exception:  # an invalid repo id is simply "not cached"
        return None
    return Path(found) if isinstance(found, str) else None


def find_arch(results_dir: Path, pretrained: str | None, revision: str | None = None) -> Arch | None:
    candidates = [results_dir / MODEL_CONFIG_FILE]
    if pretrained:
        local = Path(pretrained).expanduser()
        candidates.append(local / "config.json")
        if not local.exists():
            cached = _cached_config(pretrained, revision)
            if cached is not None:
                candidates.append(cached)
    for path in candidates:
        if path.is_file():
            try:
                return Arch.from_file(path)
            except (ValueError, json.JSONDecodeError) as error:
                log.warning("cannot read the architecture from %s: %s", path, error)
    return None


def model_name(pretrained: Any, model_type: Any = None) -> str:
    """The model's name in the tables: a local path written as `m/`, `./m` or `m` is one model, `m`."""
    name = str(pretrained or model_type or "unknown")
    return posixpath.normpath(name) if name.strip() else name


def model_info(results_dir: Path, config: dict[str, Any], model_args: dict[str, Any]) -> ModelInfo:
    pretrained = model_args.get("pretrained")
    name = model_name(pretrained, config.get("model"))
    params = config.get("model_num_parameters")
    n_params = float(params) if isinstance(params, int | float) and params > 0 else float("nan")
    arch = find_arch(results_dir, str(pretrained) if pretrained else None, model_args.get("revision"))
    return ModelInfo(name=name, n_params=n_params, arch=arch)
