"""FlashAttention-4 (`pip install longtasks[flash]`): whether it can run here, and dense causal attention with it.

FA4 (`flash-attn-4`, CuTe DSL) is the fastest dense causal kernel on Hopper/Blackwell GPUs (H200, 128k, 28/4
heads, d 128: 181 ms vs 226 ms for cuDNN SDPA) and the `FLASH` backend of FlexAttention, which runs our
block-sparse patterns 1.4x faster than the Triton backend. Both are optional: without the package, on older
GPUs or on the CPU everything runs on SDPA / FlexAttention-Triton as before.

`SPARSE_EVAL_FLASH` chooses, read at every call (benchmarks switch it in one process):
  "auto" (default): use FA4 where it is installed and the GPU is Hopper or newer; fall back per call.
  "off": never (cuDNN/SDPA dense, Triton FlexAttention).
  "on": always on CUDA; errors are raised instead of falling back (to benchmark the FLASH path for sure).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import torch

ENV = "SPARSE_EVAL_FLASH"
MODES = ("auto", "off", "on")
FA4_HEAD_DIMS = (64, 96, 128, 192, 256)
_failed: set[tuple[Any, ...]] = set()  # call kinds that raised once: not retried in this process


def mode() -> str:
    """The current `SPARSE_EVAL_FLASH` setting ("auto" when unset)."""
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"{ENV} must be one of {MODES}, got {value!r}")
    return value


@contextmanager
def forced(value: str) -> Iterator[None]:
    """Run a block under another `SPARSE_EVAL_FLASH` setting (benchmarks: FLASH vs Triton in one process)."""
    if value not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {value!r}")
    old = os.environ.get(ENV)
    os.environ[ENV] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old


@lru_cache(maxsize=1)
def installed() -> bool:
    """FA4 is importable (probed once per process; importing it loads the CuTe DSL compiler)."""
    try:
        if importlib.util.find_spec("flash_attn") is None:
            return False
        import flash_attn.cute  # noqa: F401
    except Exception:  # any import failure (missing CUDA libs, wrong wheel) means "not available"
        return False
    return True


@lru_cache(maxsize=8)
def _supported_device(index: int) -> bool:
    return torch.cuda.get_device_capability(index)[0] >= 9


def usable(device: torch.device) -> bool:
    """FA4 may run on `device` under the current mode (installed, CUDA, compute capability >= 9.0)."""
    current = mode()
    if current == "off" or device.type != "cuda":
        return False
    ok = installed() and _supported_device(device.index if device.index is not None else 0)
    if current == "on" and not ok:
        raise RuntimeError(
            f"{ENV}=on but FlashAttention-4 cannot run here: install `longtasks[flash]` (flash-attn-4) and "
            "use an NVIDIA Hopper or Blackwell GPU, or set it to auto/off"
        )
    return ok


def flex_flash_usable(device: torch.device) -> bool:
    """FlexAttention's FLASH backend may be tried: FA4 usable and this torch has the backend."""
    if not usable(device):
        return False
    return _torch_has_flash_backend()


@lru_cache(maxsize=1)
def _torch_has_flash_backend() -> bool:
    try:
        return importlib.util.find_spec("torch._inductor.kernel.flex.flex_flash_attention") is not None
    except Exception:
        return False


def failed(kind: tuple[Any, ...]) -> bool:
    """This kind of call raised before in this process (it then runs on the fallback directly)."""
    return kind in _failed


def record_failure(kind: tuple[Any, ...], error: BaseException) -> None:
    """Remember a failing kind of call; re-raise when the mode is "on", else warn once and fall back."""
    if mode() == "on":
        raise error
    if kind not in _failed:
        _failed.add(kind)
        first = str(error).splitlines()[0][:300] if str(error) else ""
        warnings.warn(
            f"FlashAttention-4 could not run {kind[0]} ({type(error).__name__}: {first}); using the "
            f"fallback kernel for such calls (set {ENV}=off to silence)",
            RuntimeWarning,
            stacklevel=3,
        )


def dense_causal(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float
) -> torch.Tensor | None:
    """Causal self-attention with FA4 (q (B, Hq, L, D), k/v (B, Hkv, L, D)), or None where it cannot run
    (not installed, not a Hopper+ GPU, dtype or head size it lacks, or an earlier failure of this kind)."""
    if query.dtype not in (torch.bfloat16, torch.float16) or not usable(query.device):
        return None
    kind = ("dense causal", query.dtype, query.shape[-1], query.shape[1], key.shape[1])
    if query.shape[-1] not in FA4_HEAD_DIMS or query.shape[1] % key.shape[1] or failed(kind):
        return None
    try:
        from flash_attn.cute import flash_attn_func

        result = flash_attn_func(
            query.transpose(1, 2),
            key.transpose(1, 2),
            value.transpose(1, 2),
            softmax_scale=scaling,
            causal=True,
        )
    except Exception as error:
        record_failure(kind, error)
        return None
    out = result[0] if isinstance(result, tuple) else result
    return out.transpose(1, 2)
