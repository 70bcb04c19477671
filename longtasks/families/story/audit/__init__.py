"""Audits of story prompts from their text alone (any generator version): sentence repeats per prompt and
per chapter, and the trivial baselines a reader gets without understanding the story."""
