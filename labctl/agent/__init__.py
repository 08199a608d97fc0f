# -*- coding: utf-8 -*-
"""labctl probe agent: a stdlib-only package, shipped to a lab host as one zip file
(``probe_agent-<hash>.pyz``, built by labctl/agentpack.py) and run there.

It gathers facts about the host (distribution, kernel, cgroups, Docker, limits)
and runs the study's experiments against the host's own Docker engine through
the ``docker`` command line client found on PATH.  It runs on Python 2.6
through 3.13 and talks to Docker 1.5 through today.

Commands::

    python probe_agent.pyz run --run-id ID --host NAME --out PATH
        [--experiments all|NAME,...] [--workdir DIR]
        [--timeout 300] [--mode bounded|exhaust] [--limit NAME=VALUE ...]

The experiments, their order and the resource each exhausts are declared once, in
``catalog`` (the controller reads the same table); storage-location runs when none is asked.

The resource experiments (the study's Table 2) are bounded by default: each stops at a cap
and before a safety floor on the host (DEFAULT_LIMITS); ``--mode exhaust`` runs them to
real exhaustion with the agent protecting itself.
    python probe_agent.pyz facts
    python probe_agent.pyz reap [--workdir DIR]
    python probe_agent.pyz --version

Every folder and file it uses keeps one rule (``hostpaths``): only root and the user it runs as
can change it; it refuses anything else (exit 3) and never writes through a link.

``run`` is meant to be started detached (setsid/nohup).  It writes its result
atomically to PATH (PATH.tmp, fsync, rename) and appends one JSON object per
line to PATH.progress.  It exits 0 whenever the result was written, also when
the host has no usable Docker (that is a result with status "error"), 2 on
usage errors, and 128+N when stopped by signal N (after writing an
"interrupted" result).

Everything the agent creates is named ``labctl-probe-<run_id>-...`` (the
probe image is ``labctl-probe:<tag>`` and is kept for reuse) and is removed on
every path; a reaper removes what earlier, dead runs left behind.  The agent
never touches a container whose name does not start with ``labctl-probe-``.

The resource checks are a table (``restable``): one ``Resource`` class per resource
(``resdisk``, ``resinodes``, ``resmemory``, ``resprocs``; ``reskind`` is its shape) says what is
its own (container script, sample keys, limit keys, `docker run` options, metrics, stop-reason
observations, verdict), and ``resrun.ResourceRun`` runs any of them, phase by phase, with small
collaborators (``container.ContainerView``, ``sampling.SampleLog``, ``resplace.RunPlace``,
``thinpool``, ``resclean``).  A new resource is one class and its line in
``restable.RESOURCE_KINDS`` and in the catalog; a new check of another kind is one module and a
line in ``runner.OWN_EXPERIMENTS`` and in the catalog.

The modules, each built only on those before it (no import cycle; the compat unit test checks):
catalog, consts, hostpaths, text, dockerparse, osparse, docker, cgroups, disklimit, facts,
limits, errors, runstate, image, sampling, context, oom, container, storage, verdicts, thinpool,
resplace, reskind, resfs, resdisk, resinodes, resmemory, resprocs, restable, resclean, resrun,
runner, cli (and ``__main__``).  Every import is relative (``from .text import read_text``), so
the package runs the same from this folder and from the zip.
"""

from __future__ import absolute_import, division, print_function

from .consts import AGENT_VERSION
from .dockerparse import parse_docker_info, parse_docker_version

__all__ = ["AGENT_VERSION", "parse_docker_info", "parse_docker_version"]
