# The typed face of limits.py for the controller (the agent has no annotations: Python 2.6).
from typing import Any

DEFAULT_LIMITS: dict[str, Any]

def parse_limit_value(name: str, text: str) -> Any: ...
def parse_limit_options(items: list[str] | None) -> dict[str, Any]: ...
