"""labctl's command line: thin click commands over the library. No logic lives here.

``common`` holds the ``labctl`` group, the consoles, the shared options and the error and exit
handling; each other module adds one family of commands to that group.
"""

from __future__ import annotations

from . import engine, lab, machine, reports, stages
from .common import main

__all__ = ["engine", "lab", "machine", "main", "reports", "stages"]
