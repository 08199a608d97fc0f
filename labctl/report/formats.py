"""The report's formats, declared once: their names, what each writes, the default set, and
the parser of ``--format`` (the CLI's help is made from the same table)."""

from __future__ import annotations

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
}
DEFAULT_FORMATS: tuple[str, ...] = ("csv", "md", "html")


def help_text() -> str:
    """``--format``'s help: every format, comma separated or repeated, and the default."""
    names = ", ".join(f"{name} ({what})" for name, what in FORMATS.items())
    return f"{names}; comma separated or repeated, all for every one [{','.join(DEFAULT_FORMATS)}]."


def parse_formats(values: Sequence[str]) -> tuple[str, ...]:
    """``("csv,md", "html")`` -> ``("csv", "md", "html")``; unknown names are a ConfigError."""
    out: list[str] = []
    for value in values:
        for item in value.split(","):
            item = item.strip().lower()
            if not item:
                continue
            if item == "all":
                out.extend(FORMATS)
                continue
            if item not in FORMATS:
                raise ConfigError(
                    f"unknown report format {item!r}", hint=f"use one of {', '.join(FORMATS)}"
                )
            out.append(item)
    return tuple(dict.fromkeys(out)) or DEFAULT_FORMATS
