"""Reports people read: CSV exports, Markdown and HTML with plots, JSON, comparisons.

Kept light on purpose (``labctl.matrix`` imports :mod:`labctl.report.classify`): the heavy
parts live in submodules that the CLI imports when asked. Imports go one way:
``classify`` (verdict rules) <- ``model`` (the data: hosts, plots, :class:`ReportData`) <-
``plots`` (drawing) and ``render`` (documents) <- ``build`` (``labctl report``: writes files);
``text`` (terminal tables) and ``runs`` (``labctl runs``) stand beside them.
"""
