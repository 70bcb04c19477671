"""Kernels that execute a selected sparse pattern: a masked-SDPA reference and compiled FlexAttention."""
