"""Every assumption of the maximum-compression test, as options. The paper states none of them (PAPER_NOTES
§2); the defaults are the notes' suggestion: one-sided at alpha = 0.05, no correction, largest passing level."""

from __future__ import annotations

from dataclasses import dataclass

TESTS = ("paired-t", "paired-bootstrap", "paired-permutation", "welch")
ALTERNATIVES = ("less", "two-sided")
CORRECTIONS = ("none", "holm", "bonferroni", "fdr_bh")
RULES = ("largest", "sequential")


@dataclass(frozen=True)
class TestOptions:
    """How one compression level is tested against dense, and how the maximum is chosen.

    - test: "paired-t" (scipy `ttest_rel`), "paired-bootstrap" (bootstrap of the mean paired difference),
      "paired-permutation" (sign-flip permutation test) — all pair samples by their input (lm-eval's doc hash);
      "welch" is the unpaired Welch t-test the paper probably used, for comparison.
    - alternative: "less" (H1: sparse mean < dense mean, one-sided) or "two-sided".
    - correction: multiple-testing correction over the compressions of one (model, length, task, method)
      (statsmodels `multipletests`: "holm", "bonferroni", "fdr_bh"), or "none".
    - rule: "largest" compression whose test does not reject, or "sequential" (stop at the first rejection).
    """

    __test__ = False  # not a pytest class

    test: str = "paired-t"
    alpha: float = 0.05
    alternative: str = "less"
    correction: str = "none"
    rule: str = "largest"
    n_resamples: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("test", self.test, TESTS),
            ("alternative", self.alternative, ALTERNATIVES),
            ("correction", self.correction, CORRECTIONS),
            ("rule", self.rule, RULES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be between 0 and 1, got {self.alpha!r}")
        if self.n_resamples < 100:
            raise ValueError(f"n_resamples must be >= 100, got {self.n_resamples}")

    @property
    def paired(self) -> bool:
        return self.test != "welch"


DEFAULT_TEST = TestOptions()
"""The defaults (a shared instance: the options are frozen)."""
