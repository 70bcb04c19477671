"""The maximum-compression test: its false-positive rate on dense = sparse data, its power on a known drop,
and the table logic (pairing, corrections, the two rules)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from longtasks.analysis.maxcomp import TestOptions, compression_tests, drop_p_value, max_compression
from longtasks.analysis.maxcomp.significance import adjust

N = 100  # samples per cell, as in the paper


def simulate(
    rng: np.random.Generator, drop: float, sims: int, paired: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """`sims` cells of binary scores. Paired: sample i has one difficulty for both runs (same input);
    unpaired: each run draws its own inputs. Sparse succeeds `drop` less often."""
    p = rng.beta(2, 2, size=(sims, N))
    q = p if paired else rng.beta(2, 2, size=(sims, N))
    dense = (rng.random((sims, N)) < p).astype(float)
    sparse = (rng.random((sims, N)) < np.clip(q - drop, 0, 1)).astype(float)
    return dense, sparse


def rejection_rate(options: TestOptions, drop: float, sims: int, seed: int) -> float:
    dense, sparse = simulate(np.random.default_rng(seed), drop, sims, paired=options.paired)
    return float(np.mean(drop_p_value(dense, sparse, options) < options.alpha))


@pytest.mark.parametrize(("test", "sims"), [("paired-t", 10000), ("welch", 10000), ("paired-bootstrap", 400),
                                            ("paired-permutation", 300)])  # fmt: skip
def test_false_positive_rate_is_alpha_on_equal_data(test, sims):
    """5 % +- 2 % at alpha = 0.05 (resampling tests on fewer simulations: each test resamples 999 times).
    Welch is simulated on independent samples, the design it assumes (on paired inputs it is conservative)."""
    options = TestOptions(test=test, n_resamples=999)
    rate = rejection_rate(options, drop=0.0, sims=sims, seed=1)
    assert abs(rate - 0.05) <= 0.02, f"{test}: false-positive rate {rate:.3f}"


@pytest.mark.parametrize(("test", "sims", "power"), [("paired-t", 2000, 0.9), ("paired-bootstrap", 100, 0.8)])
def test_a_known_drop_is_detected(test, sims, power):
    """A 0.2 drop in success probability over 100 paired samples is found most of the time."""
    options = TestOptions(test=test, n_resamples=999)
    assert rejection_rate(options, drop=0.2, sims=sims, seed=2) >= power


def test_pairing_gives_more_power_than_welch_on_correlated_samples():
    """Same inputs make dense and sparse scores correlated; the paired test uses that, Welch cannot."""
    rng = np.random.default_rng(3)
    p = rng.choice([0.05, 0.95], size=N)
    dense = (rng.random(N) < p).astype(float)
    sparse = np.where(rng.random(N) < 0.12, 0.0, dense)  # sparse loses 12 % of dense's successes
    assert (
        drop_p_value(dense, sparse, TestOptions())
        < 0.05
        < drop_p_value(dense, sparse, TestOptions(test="welch"))
    )


def test_degenerate_and_invalid_inputs():
    ones = np.ones(10)
    assert drop_p_value(ones, ones) == 1.0
    assert drop_p_value(ones, np.zeros(10)) == 0.0
    assert drop_p_value(np.zeros(10), ones) == 1.0  # sparse better: no drop
    assert drop_p_value(np.zeros(10), ones, TestOptions(alternative="two-sided")) == 0.0
    with pytest.raises(ValueError, match="paired"):
        drop_p_value(ones, np.ones(9))
    with pytest.raises(ValueError, match="test must be one of"):
        TestOptions(test="z")
    with pytest.raises(ValueError, match="alpha"):
        TestOptions(alpha=5)


def test_corrections_follow_statsmodels_definitions():
    p = [0.01, 0.02, 0.04]
    assert adjust(p, TestOptions()) == p
    assert adjust(p, TestOptions(correction="bonferroni")) == pytest.approx([0.03, 0.06, 0.12])
    assert adjust(p, TestOptions(correction="holm")) == pytest.approx([0.03, 0.04, 0.04])
    assert adjust(p, TestOptions(correction="fdr_bh")) == pytest.approx([0.03, 0.03, 0.04])


def frame_from(scores: dict[tuple[str, float], list[float]]) -> pd.DataFrame:
    rows = []
    for (method, compression), values in scores.items():
        for i, score in enumerate(values):
            rows.append({
                "model": "m", "model_name": "m", "n_params": 1e9, "length": 1024, "task": "t", "method": method,
                "phase": "dense" if method == "dense" else "prefill", "target_compression": compression,
                "achieved_compression": compression, "sample_id": f"s{i}", "doc_hash": f"h{i}", "score": score,
            })  # fmt: skip
    return pd.DataFrame(rows)


def test_max_compression_rules_on_a_constructed_cell():
    """vs at 2x keeps every answer, at 5x loses 30 of 40, at 10x loses 1 (not significant), at 20x loses 30."""
    dense = [1.0] * 40 + [0.0] * 10
    lose = lambda k: [0.0] * k + [1.0] * (40 - k) + [0.0] * 10  # noqa: E731
    frame = frame_from({("dense", 1.0): dense, ("vs", 2.0): dense, ("vs", 5.0): lose(30), ("vs", 10.0): lose(1),
                        ("vs", 20.0): lose(30)})  # fmt: skip
    tests = compression_tests(frame)
    assert tests["compression"].tolist() == [2.0, 5.0, 10.0, 20.0]
    assert tests["significant_drop"].tolist() == [False, True, False, True]
    assert tests["n_pairs"].tolist() == [50] * 4
    assert tests.loc[1, "difference"] == pytest.approx(-30 / 50)
    assert max_compression(tests)["max_compression"].tolist() == [10.0]
    sequential = TestOptions(rule="sequential")
    assert max_compression(compression_tests(frame, sequential), sequential)["max_compression"].tolist() == [
        2.0
    ]


def test_pairs_are_matched_by_input_not_by_row_order():
    dense = frame_from({("dense", 1.0): [1.0, 0.0] * 10})
    sparse = frame_from({("vs", 4.0): [1.0, 0.0] * 10}).iloc[::-1]  # same scores per input, reversed rows
    tests = compression_tests(pd.concat([dense, sparse]))
    assert tests.loc[0, "p_value"] == 1.0 and tests.loc[0, "n_pairs"] == 20


@pytest.mark.parametrize("correction", ["none", "holm"])
def test_a_compression_too_few_samples_to_test_never_counts_as_preserving(correction):
    """One sparse sample (a --limit 1 run), or samples sharing no input with dense: no p-value, so the
    compression is reported untested and the maximum stops below it, however the dense run did."""
    dense = frame_from({("dense", 1.0): [1.0] * 20})
    passing = frame_from({("vs", 2.0): [1.0] * 20})
    one = frame_from({("vs", 10.0): [0.0]})
    unpaired = frame_from({("vs", 20.0): [0.0] * 20}).assign(doc_hash=lambda f: "other-" + f["doc_hash"])
    options = TestOptions(correction=correction)
    tests = compression_tests(pd.concat([dense, passing, one, unpaired]), options)
    assert tests["tested"].tolist() == [True, False, False]
    assert tests["significant_drop"].tolist() == [False, False, False]
    assert tests["p_adjusted"].isna().tolist() == [False, True, True]
    assert tests.loc[2, "n_pairs"] == 0
    assert max_compression(tests, options)["max_compression"].tolist() == [2.0]
