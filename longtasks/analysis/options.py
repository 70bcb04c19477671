"""All settings of one `longtasks analyze` run, so a run is reproducible from its manifest."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from longtasks.analysis.cost import DEFAULT_COST, CostOptions
from longtasks.analysis.maxcomp.options import DEFAULT_TEST, TestOptions
from longtasks.analysis.scaling.law import DEFAULT_LAW, ScalingLaw

SCALING_COMPRESSIONS = ("target", "achieved")


@dataclass(frozen=True)
class AnalysisOptions:
    test: TestOptions = DEFAULT_TEST
    cost: CostOptions = DEFAULT_COST
    law: ScalingLaw = DEFAULT_LAW
    scaling_compression: str = "target"
    """Compression on the scaling law's C axis: "target" or "achieved" (needs sparse-hf's report)."""
    n_boot: int = 1000
    """Bootstrap replicates of the crossover length."""
    seed: int = 0
    plots: bool = True
    phases: dict[str, str] = field(default_factory=dict)
    """Phase of methods the analysis does not know (METHOD -> prefill|decode)."""

    def __post_init__(self) -> None:
        """Checked before any table is read or written: a bad option must not cost a half-finished analysis."""
        if self.scaling_compression not in SCALING_COMPRESSIONS:
            raise ValueError(
                f"scaling compression (--scaling-compression) must be one of {', '.join(SCALING_COMPRESSIONS)}, "
                f"got {self.scaling_compression!r}"
            )
        if self.n_boot < 1:
            raise ValueError(f"n_boot (--n-boot) must be >= 1, got {self.n_boot}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
