"""The study's checks, by the names the probe agent knows them (Table 2 of the 2015 study).

Kept apart so the probe (which asks for them) and the reports (which order them) agree without
the offline report importing the SSH side.
"""

from __future__ import annotations

from .errors import ConfigError

#: in the order the agent runs them and people read them
EXPERIMENTS: tuple[str, ...] = (
    "storage-location",
    "disk",
    "disk-limited",
    "disk-shared",
    "inodes",
    "memory",
    "memory-limited",
    "processes",
    "processes-limited",
)


def parse_experiments(text: str) -> tuple[str, ...]:
    """``"disk,inodes"`` or ``"all"`` -> names in the agent's order; unknown names are errors."""
    asked = [e.strip() for e in text.split(",") if e.strip()]
    if not asked or "all" in asked:
        return EXPERIMENTS
    unknown = [e for e in asked if e not in EXPERIMENTS]
    if unknown:
        raise ConfigError(
            f"unknown experiment {', '.join(unknown)}",
            hint=f"choose from all, {', '.join(EXPERIMENTS)}",
        )
    return tuple(e for e in EXPERIMENTS if e in asked)
