"""The story family: a seeded world simulator owns the truth; jinja2 templates tell it as a story.

Tasks: retrieval, multi-hop, filtering (the paper's) and inventory aggregation (ours).
"""
