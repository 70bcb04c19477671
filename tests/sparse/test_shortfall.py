"""A requested compression the method cannot reach at this length is flagged, not silently reported as met:
the report names the shortfall, `apply` warns, and SnapKV warns when its capacity holds only sinks and
recent tokens."""

from __future__ import annotations

import warnings

import pytest
import torch

import sparse_eval
from sparse_eval.compression import CompressionReport, CompressionShortfallWarning
from sparse_eval.methods.snapkv import snapkv_select_indices


def report_with(target: float, dense: float, sparse: float) -> CompressionReport:
    report = CompressionReport(method="m", target_compression=target)
    report.layer(0, "prefill").add(torch.tensor([dense]), torch.tensor([sparse]))
    return report


def test_report_names_a_shortfall_below_eighty_percent_of_the_request():
    assert report_with(10.0, 100.0, 50.0).shortfall("prefill") is not None  # 2x of 10x
    message = report_with(10.0, 100.0, 50.0).shortfall("prefill")
    assert "2.00x" in message and "10x" in message
    assert report_with(2.2, 100.0, 50.0).shortfall("prefill") is None  # 2x of 2.2x: close enough
    assert report_with(1.0, 100.0, 100.0).shortfall("prefill") is None  # dense request
    assert report_with(10.0, 100.0, 50.0).shortfall("decode") is None  # nothing recorded there


def test_apply_warns_when_the_forced_pattern_exceeds_the_budget(build_tiny_lm, token_ids):
    model = build_tiny_lm("llama")
    ids = token_ids(300, 0)
    with (
        pytest.warns(CompressionShortfallWarning, match="requested"),
        torch.inference_mode(),
        sparse_eval.apply(model, "vertical_slash", compression=20) as session,
    ):
        model(ids)
    assert session.report.achieved_compression("prefill") < 0.8 * 20


def test_apply_is_quiet_when_the_target_is_reached(build_tiny_lm, token_ids):
    model = build_tiny_lm("llama")
    ids = token_ids(1024, 1)
    with warnings.catch_warnings(record=True) as caught, torch.inference_mode():
        warnings.simplefilter("always")
        with sparse_eval.apply(model, "block_sparse", compression=4) as session:
            model(ids)
    assert not [w for w in caught if issubclass(w.category, CompressionShortfallWarning)]
    assert session.report.achieved_compression("prefill") == pytest.approx(4.0, rel=0.1)


def test_snapkv_warns_when_capacity_holds_only_sinks_and_recent_tokens():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 4, 400, 8, generator=g), torch.randn(1, 2, 400, 8, generator=g)
    with pytest.warns(RuntimeWarning, match="sliding window"):
        kept = snapkv_select_indices(q, k, compression=5, scaling=0.3)  # 80 tokens < 4 sinks + 128 local
    assert kept[0, 0].tolist() == [0, 1, 2, 3, *range(324, 400)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        snapkv_select_indices(q, k, compression=2, scaling=0.3)  # 200 tokens: room for scored positions
