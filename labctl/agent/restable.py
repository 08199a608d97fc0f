# -*- coding: utf-8 -*-
"""The resource table: every shared resource the study exhausts (one class each, the res*
modules) and every resource check of the catalog as an ``Experiment`` (its resource and its
variant), with the name-keyed views the rest of the agent and its tests use.

A new resource is one class (a ``Resource`` of its own module), its line in RESOURCE_KINDS
below and its line(s) in catalog.py; a new variant of a resource is a line in that class's
``variants`` and one in catalog.py.
"""

from __future__ import absolute_import, division, print_function

from .catalog import RESOURCE_EXPERIMENTS, RESOURCE_OF
from .resdisk import Disk
from .resinodes import Inodes
from .reskind import Experiment, run_options
from .resmemory import Memory
from .resprocs import Processes

#: the resources, in the catalog's order
RESOURCE_KINDS = (Disk, Inodes, Memory, Processes)
RESOURCES = dict((kind.name, kind) for kind in RESOURCE_KINDS)


def _specs():
    table = {}
    for name in RESOURCE_EXPERIMENTS:
        kind = RESOURCES[RESOURCE_OF[name]]
        table[name] = Experiment(name, kind, **kind.variants.get(name, {}))
    return table


#: experiment name -> Experiment, for every resource check of the catalog
EXPERIMENT_SPECS = _specs()
#: what each ratio (landed_on_host_ratio) means, by resource (disk-dm: on devicemapper)
RATIO_DEFINITIONS = dict((kind.name, kind.ratio_definition) for kind in RESOURCE_KINDS)
RATIO_DEFINITIONS["disk-dm"] = Disk.ratio_definition_dm
#: every limit a `docker run` option of some resource reports as applied
APPLIED_KEYS = tuple(sorted(set(key for kind in RESOURCE_KINDS for key in kind.applied_keys)))


def container_script(name, amount, sleep_s, soak_s=0):
    """The shell script the container of experiment ``name`` runs (``amount``: its cap, None
    for none; ``soak_s``: exhaust mode's fork retry time, processes only)."""
    return EXPERIMENT_SPECS[name].new_kind().script(amount, sleep_s, soak_s)


def resource_run_options(name, server_version, limits, selinux_enforcing=False,
                         shared_dir=None, storage_opt_size=None):
    """Extra `docker run` options of experiment ``name`` -> (args, applied), where applied
    says which limits were asked for (every APPLIED_KEYS key, None when not)."""
    args, own = run_options(EXPERIMENT_SPECS[name].new_kind(), server_version, limits,
                            selinux_enforcing, shared_dir, storage_opt_size)
    applied = dict((key, None) for key in APPLIED_KEYS)
    applied.update(own)
    return args, applied


def cap_and_floor(resource, mode, overrides, free, total):
    """(cap, floor) for one resource; cap None means no cap, floor 0 means no floor."""
    return RESOURCES[resource].cap_and_floor(mode, overrides, free, total)


def host_checks(resource, directory, limits):
    """The host tries the same thing the container did; flat metrics."""
    return RESOURCES[resource].host_checks(directory, limits)


def resource_verdict(name, m):
    """A plain sentence: what was observed, and what follows from it."""
    return EXPERIMENT_SPECS[name].new_kind().verdict(m)
