"""The 2015 study as data (``article.json`` here) and a run's hosts beside it.

Every system of the article's Table 1 (CentOS 6.6, CentOS 7.0, Ubuntu 14.04) is listed, each
paired with the closest host of the run, or "no comparable host in this run". Closeness is a
score over criteria, each kept as data with the words that explain it (:class:`Criterion`):

- the engine: Docker 1.5.0 (the article's) scores highest, a 1.x engine of the same era less;
- the storage driver: the same driver, or a stand-in (overlay for aufs, which Debian kernels no
  longer carry); a host on none of them is no partner at all (the driver decides where a
  container's files live, the only finding the article's text gives);
- the daemon's mount namespace, measured (``facts.docker.mount_namespace``), else expected from
  the init style the inventory asked for (``labctl_engine_init``): what tells the CentOS 7.0
  finding (private namespace: Docker 1.5.0's systemd unit had ``MountFlags=slave``) from the
  CentOS 6.6 one;
- the distribution family, its version and the kernel line (which only real CentOS / Ubuntu
  hosts can match).

Each host partners at most one system; the pairing with the highest total score wins (ties: the
article's order, then host names). Host names and the ``labctl_stands_for`` hint are never used.
Then, fact by fact and finding by finding: what matches, what differs and why.

The article's text has results only for the storage check; for the resource checks the baseline
holds era facts (expectations), shown beside the run's findings, never scored.

Layers, each on those before it: ``model`` (verdict words, weights, the comparison's records),
``load`` (the data file, a host's profile), ``score`` (one function per criterion), ``pair``
(the assignment, the rows, :func:`compare_to_baseline`).
"""

from __future__ import annotations

from .load import BASELINES, files_in_tree, kernel_line, load_baseline, mount_namespace
from .model import (
    DIFFERS,
    MATCH,
    NO_BASELINE,
    NOT_MEASURED,
    PARTIAL,
    UNKNOWN,
    WEIGHTS,
    BaselineComparison,
    HostNote,
    Row,
    SystemPairing,
)
from .pair import compare_to_baseline

__all__ = [
    "BASELINES", "DIFFERS", "MATCH", "NOT_MEASURED", "NO_BASELINE", "PARTIAL", "UNKNOWN",
    "WEIGHTS", "BaselineComparison", "HostNote", "Row", "SystemPairing", "compare_to_baseline",
    "files_in_tree", "kernel_line", "load_baseline", "mount_namespace",
]  # fmt: skip
