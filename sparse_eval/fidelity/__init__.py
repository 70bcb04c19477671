"""Fidelity of sparse methods against dense attention: capture real q/k/v, synthetic structured inputs,
mass recall and output error, model-level KL and agreement (benchmarks/bench_fidelity.py drives them)."""
