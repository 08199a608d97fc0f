# -*- coding: utf-8 -*-
"""The agent's version, names and defaults (shared by every module)."""

from __future__ import absolute_import, division, print_function

import re

from .catalog import DEFAULT

AGENT_VERSION = "0.1.0"
SCHEMA_VERSION = 1

DEFAULT_TIMEOUT = 300
DEFAULT_EXPERIMENTS = DEFAULT  # the catalog's
NAME_PREFIX = "labctl-probe-"
IMAGE_REPO = "labctl-probe"
DEFAULT_PROBE_TOOLS = ("sh", "cat", "dd", "sleep", "stat", "head", "mkdir",
                       "touch", "rm", "ls", "sync", "df")
# every tool any experiment needs: ONE probe image per run (and per host userland), imported
# at the start of the run while the disk is as the run found it
PROBE_TOOLS_ALL = DEFAULT_PROBE_TOOLS + ("tail",)
TOOL_DIRS = ("/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin")
FACTS_CMD_TIMEOUT = 30
CLEANUP_CMD_TIMEOUT = 60
FIND_TIME_LIMIT = 20.0
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
KIB = 1024
MIB = 1024 ** 2
GIB = 1024 ** 3
