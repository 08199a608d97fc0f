"""The report's formats, declared once: their names, what each writes, the default set, and
the parser of ``--format`` (the CLI's help is made from the same table)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from ..errors import ConfigError

#: name -> what it writes
FORMATS: dict[str, str] = {
    "csv": "matrix.csv, verdicts.csv and results.csv",
    "md": "report.md with its plots",
    "html": "report.html",
    "json": "report.json",
    # opt-in: read from the host files again, one at a time, after the report
    "series": "every host's samples in series.csv",
    # opt-in, and only with the parquet extra installed: not part of "all"
    "parquet": "the tidy table (labctl.report.frame) in results.parquet, needs pyarrow",
}
DEFAULT_FORMATS: tuple[str, ...] = ("csv", "md", "html")
#: formats that need a package labctl does not require: format -> (module, extra)
OPTIONAL: dict[str, tuple[str, str]] = {"parquet": ("pyarrow", "parquet")}


def help_text() -> str:
    """``--format``'s help: every format, comma separated or repeated, and the default."""
    names = ", ".join(f"{name} ({what})" for name, what in FORMATS.items())
    every = "all for every one but parquet"
    return f"{names}; comma separated or repeated, {every} [{','.join(DEFAULT_FORMATS)}]."


def parse_formats(values: Sequence[str]) -> tuple[str, ...]:
    """``("csv,md", "html")`` -> ``("csv", "md", "html")``; unknown names are a ConfigError."""
    out: list[str] = []
    for value in values:
        for item in value.split(","):
            item = item.strip().lower()
            if not item:
                continue
            if item == "all":
                out.extend(f for f in FORMATS if f not in OPTIONAL)
                continue
            if item not in FORMATS:
                raise ConfigError(
                    f"unknown report format {item!r}", hint=f"use one of {', '.join(FORMATS)}"
                )
            out.append(item)
    return tuple(dict.fromkeys(out)) or DEFAULT_FORMATS


def check_installed(formats: Sequence[str]) -> None:
    """A ConfigError (one line, before any work) for a format whose package is missing."""
    for name in formats:
        if name in OPTIONAL:
            module, extra = OPTIONAL[name]
            if importlib.util.find_spec(module) is None:
                raise ConfigError(
                    f"--format {name} needs {module}, which is not installed",
                    hint=f"pip install 'labctl[{extra}]' (or pip install {module})",
                )
