# -*- coding: utf-8 -*-
"""The study's checks (Table 2 of the 2015 study), declared once.

The agent runs them by these names, in this order; the controller asks for them, orders its
reports by them and lists them in its help from this same table (labctl/experiments.py reads it).
Each entry: the name, the shared resource it exhausts (None for storage-location, which
exhausts nothing) and the question it answers, in one line.
"""

from __future__ import absolute_import, division, print_function

EXPERIMENTS = (
    ("storage-location", None,
     "where do a container's files live on the host; can the host read and change them?"),
    # the storage checks a claim names (opt-in, below), before any check fills the host
    ("storage-host-mount", None,
     "a container's thin volume mounted by hand on the host: do reads and writes work?"),
    ("drivers-available", None,
     "which storage drivers this engine and kernel start, and which it picks (Table 3)"),
    ("storage-driver-switch", None,
     "a container after its engine switches storage driver; then export, wipe, import"),
    ("disk", "disk", "a container writes one huge file into its own filesystem"),
    ("disk-limited", "disk",
     "the same with a per-container disk limit, where the engine has one"),
    ("disk-shared", "disk", "the same into a folder the host shares with it (bind mount)"),
    ("inodes", "inodes", "a container creates very many empty files"),
    ("memory", "memory", "a container allocates memory, without a limit"),
    ("memory-limited", "memory", "the same with -m"),
    ("processes", "processes", "a container forks many children, without a limit"),
    ("processes-limited", "processes", "the same with --pids-limit"),
)
#: the names, in the order the agent runs them and people read them
ORDER = tuple(name for name, _resource, _question in EXPERIMENTS)
#: experiment -> the resource it exhausts (the resource checks only)
RESOURCE_OF = dict((name, resource) for name, resource, _question in EXPERIMENTS if resource)
#: the resource checks, in order
RESOURCE_EXPERIMENTS = tuple(name for name in ORDER if name in RESOURCE_OF)
QUESTION = dict((name, question) for name, _resource, question in EXPERIMENTS)
#: what the agent runs when it is not told (the controller asks for what its user asks)
DEFAULT = ("storage-location",)
#: checks that start daemons of the host's engine, or mount a container's filesystem twice
#: (disposable hosts only): run only when named (on the command line or in a host's
#: labctl_experiments), never by "all"
OPT_IN = ("drivers-available", "storage-host-mount", "storage-driver-switch")
#: what "all" asks for
ALL = tuple(name for name in ORDER if name not in OPT_IN)
