"""``python -m labctl.cli``: the same as the ``labctl`` command."""

from labctl.cli import main

main()
