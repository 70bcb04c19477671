"""The paper's analyses on your own results: results store, sweep runner, cost model, isoCost frontier,
maximum-compression test, scaling laws and plots (`longtasks sweep`, `longtasks analyze`).

Importing this package is cheap: pandas, scipy, statsmodels and matplotlib (the `[analysis]` extra) are
imported inside the functions that need them, and nothing here imports torch or `sparse_eval` (the sweep
reaches `sparse-hf` through lm-eval's model registry only when it runs).
"""
