"""The paper's figures as PNG + SVG files (matplotlib, imported only when a plot is drawn)."""
