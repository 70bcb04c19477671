"""isoCost analysis (PAPER_NOTES §1.4): accuracy against cost for every (model, method, compression) at each
length, its Pareto frontier, and the length where a larger sparse model first beats a smaller dense one."""

from longtasks.analysis.frontier.crossover import crossover_table
from longtasks.analysis.frontier.pareto import pareto_flags
from longtasks.analysis.frontier.points import cost_points

__all__ = ["cost_points", "crossover_table", "pareto_flags"]
