"""Task families, one package each. The generic core reaches them only through `longtasks.registry`."""
