"""``python -m labctl.cli``: the same as the ``labctl`` command."""

from . import main

main()
