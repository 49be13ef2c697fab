"""Figures, tables and a static HTML page from saved results (never from a model run)."""
