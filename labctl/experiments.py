"""The study's checks as the controller asks for them: the agent's own declaration
(:mod:`labctl.agent.catalog`: names, order, questions), read here so that the probe, the
reports and the CLI's help list exactly what the agent runs."""

from __future__ import annotations

from .agent import catalog
from .errors import ConfigError

#: in the order the agent runs them and people read them
EXPERIMENTS: tuple[str, ...] = catalog.ORDER
#: what "all" asks for: every check but the opt-in ones (named only: see catalog.OPT_IN)
ALL: tuple[str, ...] = catalog.ALL


def help_text() -> str:
    """``--experiments``'s help: all, or the checks by name, from the agent's declaration."""
    opt_in = ", ".join(catalog.OPT_IN)
    return (
        f"Checks to run: all, or some of {', '.join(EXPERIMENTS)} (comma separated; {opt_in} "
        "run only when named: they start daemons of the host's engine or mount a container's "
        "disk a second time)."
    )


def parse_experiments(text: str) -> tuple[str, ...]:
    """``"disk,inodes"`` or ``"all"`` -> names in the agent's order; unknown names are errors."""
    asked = [e.strip() for e in text.split(",") if e.strip()]
    if not asked or asked == ["all"]:
        return ALL
    if "all" in asked:  # all, and opt-in checks named beside it
        asked = [*ALL, *(e for e in asked if e != "all")]
    unknown = [e for e in asked if e not in EXPERIMENTS]
    if unknown:
        raise ConfigError(
            f"unknown experiment {', '.join(unknown)}",
            hint=f"choose from all, {', '.join(EXPERIMENTS)}",
        )
    return tuple(e for e in EXPERIMENTS if e in asked)
