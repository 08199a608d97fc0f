"""The report stage, whole: a run folder's host files in, CSVs, documents and comparisons out.

Layers point down only (each module imports from those listed before it, never after):
``classify`` (verdict classes and units) <- ``model`` (run folders loaded into host entries,
:class:`ReportData`) <- ``samekernel`` (hosts on one kernel with different engines) and
``matrix`` (a host's result row by row; the CSV writer) <- ``tables`` (the CSVs, in plain
Python) <- ``frame`` (the same tables as one tidy pandas DataFrame and its pivots: the API for
analysis, and Parquet) <- ``baseline`` (the 2015 study: load, score, pair) <- ``compare``
(two runs, check by check) <- ``plots`` and ``render`` (figures, HTML, Markdown, JSON) <-
``build`` (``labctl report``: writes the files) <- ``text`` (terminal tables); ``runs``
(``labctl runs``) stands apart. The package itself imports nothing: the CLI imports the
modules it needs when a report is asked for.
"""
