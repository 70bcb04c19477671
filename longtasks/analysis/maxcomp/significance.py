"""One test: is the sparse run's accuracy significantly below the dense run's? Returns a p-value."""

from __future__ import annotations

import warnings

import numpy as np

from longtasks.analysis import _deps
from longtasks.analysis.maxcomp.options import DEFAULT_TEST, TestOptions


def _degenerate(diff_mean: float, alternative: str) -> float:
    """p-value when every difference is the same (no variance): certain evidence or none."""
    if alternative == "less":
        return 0.0 if diff_mean < 0 else 1.0
    return 0.0 if diff_mean != 0 else 1.0


def _paired_bootstrap(diff: np.ndarray, options: TestOptions) -> float:
    """Bootstrap null distribution of the mean difference (centred at 0), from scipy's resampler."""
    stats = _deps.require("scipy.stats")
    result = stats.bootstrap(
        (diff,), np.mean, n_resamples=options.n_resamples, method="percentile", vectorized=True,
        rng=np.random.default_rng(options.seed),
    )  # fmt: skip
    observed = float(diff.mean())
    null = np.asarray(result.bootstrap_distribution) - observed
    if options.alternative == "less":
        return float((1 + np.sum(null <= observed)) / (1 + null.size))
    return float((1 + np.sum(np.abs(null) >= abs(observed))) / (1 + null.size))


def _t_tests(dense: np.ndarray, sparse: np.ndarray, options: TestOptions) -> np.ndarray:
    """Paired or Welch t-tests of 2-D inputs (one test per row), vectorised by scipy."""
    stats = _deps.require("scipy.stats")
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant rows: their p-values are replaced below
        if options.test == "paired-t":
            p = stats.ttest_rel(sparse, dense, axis=-1, alternative=options.alternative).pvalue
            constant = np.ptp(sparse - dense, axis=-1) == 0
        else:
            p = stats.ttest_ind(
                sparse, dense, axis=-1, equal_var=False, alternative=options.alternative
            ).pvalue
            constant = (np.ptp(dense, axis=-1) == 0) & (np.ptp(sparse, axis=-1) == 0)
    p = np.asarray(p, dtype=float)
    shift = sparse.mean(axis=-1) - dense.mean(axis=-1)
    p[constant] = [_degenerate(float(value), options.alternative) for value in shift[constant]]
    return p  # NaN only where no test could be computed: "untested", never "no drop"


def _resampling_test(dense: np.ndarray, sparse: np.ndarray, options: TestOptions) -> float:
    stats = _deps.require("scipy.stats")
    diff = sparse - dense
    if np.ptp(diff) == 0:
        return _degenerate(float(diff.mean()), options.alternative)
    if options.test == "paired-bootstrap":
        return _paired_bootstrap(diff, options)
    result = stats.permutation_test(
        (sparse, dense), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
        alternative=options.alternative, n_resamples=options.n_resamples, vectorized=True,
        rng=np.random.default_rng(options.seed),
    )  # fmt: skip
    return float(result.pvalue)


def finite_samples(dense: np.ndarray, sparse: np.ndarray, paired: bool) -> tuple[np.ndarray, np.ndarray]:
    """The 1-D samples a test can use: pairs with both scores finite (paired), or each side's finite scores
    (unpaired). A NaN score (an unscorable answer) would otherwise make the whole p-value NaN."""
    if paired:
        keep = np.isfinite(dense) & np.isfinite(sparse)
        return dense[keep], sparse[keep]
    return dense[np.isfinite(dense)], sparse[np.isfinite(sparse)]


def _one_test(dense: np.ndarray, sparse: np.ndarray, options: TestOptions) -> float:
    """One test on its finite samples; NaN (untested) when fewer than 2 remain on a side."""
    dense, sparse = finite_samples(dense, sparse, options.paired)
    if min(dense.size, sparse.size) < 2:
        return np.nan
    if options.test in ("paired-t", "welch"):
        return float(_t_tests(dense[None, :], sparse[None, :], options)[0])
    return _resampling_test(dense, sparse, options)


def drop_p_value(
    dense: np.ndarray, sparse: np.ndarray, options: TestOptions = DEFAULT_TEST
) -> float | np.ndarray:
    """p-value of H0 "sparse is not below dense" (alternative "less") or "they are equal" (two-sided).

    Samples run along the last axis; leading axes are independent tests (an array of p-values comes back).
    Paired tests need `dense[..., i]` and `sparse[..., i]` to be the same input; Welch takes independent samples.
    Non-finite scores are left out (with their partner when paired); a test left with fewer than 2 samples on
    a side returns NaN, which means "untested", never "no significant drop".
    """
    dense = np.asarray(dense, dtype=float)
    sparse = np.asarray(sparse, dtype=float)
    if dense.shape[-1] < 2 or sparse.shape[-1] < 2:
        raise ValueError(
            f"a test needs at least 2 samples per run, got {dense.shape[-1]} dense and {sparse.shape[-1]} sparse"
        )
    if options.paired and dense.shape != sparse.shape:
        raise ValueError(f"paired samples must match one to one, got shapes {dense.shape} and {sparse.shape}")
    if dense.shape[:-1] != sparse.shape[:-1]:
        raise ValueError(f"batched tests need the same leading shape, got {dense.shape} and {sparse.shape}")
    lead = dense.shape[:-1]
    flat_d, flat_s = dense.reshape(-1, dense.shape[-1]), sparse.reshape(-1, sparse.shape[-1])
    if options.test in ("paired-t", "welch") and np.isfinite(flat_d).all() and np.isfinite(flat_s).all():
        p = _t_tests(flat_d, flat_s, options)
    else:
        p = np.array([_one_test(d, s, options) for d, s in zip(flat_d, flat_s, strict=True)])
    return float(p[0]) if not lead else p.reshape(lead)


def adjust(p_values: list[float], options: TestOptions) -> list[float]:
    """Multiple-testing correction of one family of p-values (statsmodels), or unchanged for "none"."""
    if options.correction == "none" or not p_values:
        return list(p_values)
    multitest = _deps.require("statsmodels.stats.multitest")
    return [
        float(p) for p in multitest.multipletests(p_values, alpha=options.alpha, method=options.correction)[1]
    ]
