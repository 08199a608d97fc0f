"""Reports people read: CSV exports, Markdown and HTML with plots, JSON, comparisons.

Kept light on purpose (``labctl.matrix`` imports :mod:`labctl.report.classify`): the heavy
parts live in submodules that the CLI imports when asked (``build``, ``plots``, ``render``).
"""
