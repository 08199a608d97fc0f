# The typed face of catalog.py for the controller (the agent has no annotations: Python 2.6).
EXPERIMENTS: tuple[tuple[str, str | None, str], ...]
ORDER: tuple[str, ...]
RESOURCE_OF: dict[str, str]
RESOURCE_EXPERIMENTS: tuple[str, ...]
QUESTION: dict[str, str]
DEFAULT: tuple[str, ...]
OPT_IN: tuple[str, ...]
ALL: tuple[str, ...]
