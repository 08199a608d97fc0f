"""How many hosts are worked on at once: ansible's forks and the probe's threads are one number.

Each host costs the controller little while it waits (an SSH session, a thread), so the default
is every host at once, up to a cap that keeps the controller's sockets, processes and memory
bounded (ansible forks one process per host).
"""

from __future__ import annotations

from .errors import ConfigError

#: the most hosts worked on at once unless --forks says otherwise
FORKS_CAP = 50


def forks_for(n_hosts: int, asked: int | None = None) -> int:
    """``--forks`` when given, else every host up to :data:`FORKS_CAP`; at least 1."""
    if asked is not None:
        if asked < 1:
            raise ConfigError(f"--forks {asked}: give 1 or more hosts at once")
        return asked
    return max(1, min(n_hosts, FORKS_CAP))
