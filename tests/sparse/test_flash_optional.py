"""FlashAttention-4 is optional: without it (or off a Hopper+ GPU) every path runs as before, the mode switch
is validated, and the CPU never tries it."""

from __future__ import annotations

import math

import pytest
import torch

from sparse_eval import get_method
from sparse_eval.backends import flash
from sparse_eval.backends.dense import dense_attention
from sparse_eval.compression import CompressionReport


def test_mode_defaults_to_auto_and_rejects_unknown_values(monkeypatch):
    monkeypatch.delenv(flash.ENV, raising=False)
    assert flash.mode() == "auto"
    monkeypatch.setenv(flash.ENV, "sometimes")
    with pytest.raises(ValueError, match=flash.ENV):
        flash.mode()


def test_forced_mode_is_restored(monkeypatch):
    monkeypatch.setenv(flash.ENV, "auto")
    with flash.forced("off"):
        assert flash.mode() == "off"
    assert flash.mode() == "auto"
    with pytest.raises(ValueError), flash.forced("fast"):
        pass


@pytest.mark.parametrize("value", ["auto", "on", "off"])
def test_the_cpu_never_uses_flash(monkeypatch, value):
    monkeypatch.setenv(flash.ENV, value)
    cpu = torch.device("cpu")
    assert not flash.usable(cpu)
    assert not flash.flex_flash_usable(cpu)
    q = torch.randn(1, 4, 64, 16, dtype=torch.bfloat16)
    kv = torch.randn(1, 2, 64, 16, dtype=torch.bfloat16)
    assert flash.dense_causal(q, kv, kv, 0.25) is None
    expected = torch.nn.functional.scaled_dot_product_attention(
        q, kv, kv, is_causal=True, scale=0.25, enable_gqa=True
    )
    assert torch.equal(dense_attention(q, kv, kv, 0.25), expected)


@pytest.mark.parametrize("name", ["vertical_slash", "block_sparse", "flexprefill"])
def test_methods_run_with_flash_switched_off(monkeypatch, name):
    monkeypatch.setenv(flash.ENV, "off")
    small = {
        "vertical_slash": {"block_size": 16, "q_block_size": 32, "last_q_size": 48, "n_local": 8},
        "block_sparse": {"block_size": 16, "q_block_size": 32},
        "flexprefill": {"block_size": 16, "min_budget": 32, "last_q_size": 48},
    }[name]
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, h, 300, 16, generator=g) for h in (4, 2, 2))
    method = get_method(name, compression=3, **small)
    report = CompressionReport()
    out = method.prefill(q, k, v, layer_idx=0, scaling=0.25, stats=report.layer(0, "prefill"))
    assert out.shape == q.shape and bool(torch.isfinite(out).all())
    assert report.achieved_compression("prefill") > 1.5


def test_a_failure_is_remembered_and_raised_only_when_forced(monkeypatch):
    kind = ("test kind", 1)
    monkeypatch.setenv(flash.ENV, "on")
    with pytest.raises(RuntimeError, match="boom"):
        flash.record_failure(kind, RuntimeError("boom"))
    assert not flash.failed(kind)
    monkeypatch.setenv(flash.ENV, "auto")
    with pytest.warns(RuntimeWarning, match="test kind"):
        flash.record_failure(kind, RuntimeError("boom"))
    assert flash.failed(kind)
    flash._failed.discard(kind)


class _Mask:
    def __init__(self, block_size: tuple[int, int]) -> None:
        self.BLOCK_SIZE = block_size


def test_flex_dispatch_uses_flash_only_for_plain_tiles_and_falls_back(monkeypatch):
    from sparse_eval.backends import flex

    monkeypatch.setenv(flash.ENV, "auto")
    monkeypatch.setattr(flash, "flex_flash_usable", lambda device: True)
    monkeypatch.setattr(flex, "_flex", lambda: lambda *a, **k: "triton")
    monkeypatch.setattr(flex, "_flex_flash", lambda: lambda *a, **k: "flash")
    q = torch.zeros(1, 2, 8, 16, dtype=torch.bfloat16)

    def call(block: tuple[int, int], kind: str) -> str:
        return flex._call(q, q, q, _Mask(block), 0.25, False, None, lse=False, kind=kind)

    assert call((128, 64), "tiles") == "flash"
    assert call((128, 128), "tiles") == "flash"
    assert call((16, 16), "tiles") == "triton"  # FA4 has no 16-wide tiles
    assert call((128, 64), "tiles without columns") == "flash"
    assert call((128, 64), "column pass") == "flash"

    def broken(*args, **kwargs):
        raise RuntimeError("unsupported here")

    monkeypatch.setattr(flex, "_flex_flash", lambda: broken)
    with pytest.warns(RuntimeWarning, match="unsupported here"):
        assert call((64, 64), "tiles") == "triton"
    assert call((64, 64), "tiles") == "triton"  # remembered: not tried again
    flash._failed.clear()


def test_flash_lse_convention_is_classified_from_a_probe():
    from sparse_eval.backends import flex

    natural = torch.tensor([[0.3, 1.7, 4.2, 5.5]])
    assert flex.lse_to_natural_factor(natural + 1e-3, natural) == 1.0
    assert flex.lse_to_natural_factor(natural * math.log(2), natural) == pytest.approx(1 / math.log(2))
    assert flex.lse_to_natural_factor(natural / math.log(2), natural) == pytest.approx(math.log(2))
    assert flex.lse_to_natural_factor(natural + 1.0, natural) is None  # no known convention: do not merge


def test_flash_lse_is_rescaled_to_natural_log_or_the_pass_runs_on_triton(monkeypatch):
    from sparse_eval.backends import flex

    monkeypatch.setenv(flash.ENV, "auto")
    monkeypatch.setattr(flash, "flex_flash_usable", lambda device: True)
    out = torch.ones(1, 2, 8, 16)
    lse = torch.full((1, 2, 8), 2.0)
    monkeypatch.setattr(flex, "_flex", lambda: lambda *a, **k: ("triton", lse))
    monkeypatch.setattr(flex, "_flex_flash", lambda: lambda *a, **k: (out, lse))
    q = torch.zeros(1, 2, 8, 16, dtype=torch.bfloat16)

    def call(kind: str) -> tuple:
        return flex._call(q, q, q, _Mask((128, 64)), 0.25, False, None, lse=True, kind=kind)

    monkeypatch.setattr(flex, "_flash_lse_factor", lambda query: 1 / math.log(2))  # torch 2.11's FLASH
    got_out, got_lse = call("column pass")
    assert got_out is out
    torch.testing.assert_close(got_lse, lse / math.log(2))
    monkeypatch.setattr(flex, "_flash_lse_factor", lambda query: 1.0)  # already natural: untouched
    assert call("column pass")[1] is lse
    monkeypatch.setattr(flex, "_flash_lse_factor", lambda query: None)  # unknown: Triton, remembered
    with pytest.warns(RuntimeWarning, match="neither natural"):
        assert call("tiles without columns")[0] == "triton"
    assert call("tiles without columns")[0] == "triton"
    flash._failed.clear()
