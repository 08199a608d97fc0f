"""Where labctl keeps its state (labs, keys) and its caches (debootstrap packages).

``LABCTL_HOME`` (default ``~/.local/share/labctl``) holds one folder per lab;
``LABCTL_CACHE`` (default ``~/.cache/labctl``) holds downloads worth keeping between runs.
Tests point both at their own folders so they never touch a user's lab.
"""

from __future__ import annotations

import os
from pathlib import Path

from .agentpack import build_agent
from .errors import ProbeError
from .files import unsafe_reason


def home_dir() -> Path:
    env = os.environ.get("LABCTL_HOME")
    return Path(env) if env else Path.home() / ".local" / "share" / "labctl"


def cache_dir() -> Path:
    env = os.environ.get("LABCTL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "labctl"


def lab_dir(lab: str) -> Path:
    return home_dir() / "labs" / lab


def agent_path() -> Path:
    """The probe agent as pushed to a host: ``probe_agent-<hash12>.pyz``, built from
    labctl/agent/ into the cache when its sources changed (labctl/agentpack.py); refused when
    another user of this machine could change it (it runs as root on every host probed)."""
    path = build_agent(cache_dir() / "agent")
    unsafe = unsafe_reason(path)
    if unsafe is not None:
        raise ProbeError(
            f"the probe agent {path}: {unsafe}: another user could change the code labctl "
            "runs on every host",
            hint="fix it (chown, chmod o-w) or set LABCTL_CACHE to a folder only you can write",
        )
    return path


def project_root() -> Path:
    """The checkout (or install prefix) that holds playbooks/ next to the package."""
    return Path(__file__).resolve().parent.parent


def playbooks_dir() -> Path:
    env = os.environ.get("LABCTL_PLAYBOOKS")
    return Path(env) if env else project_root() / "playbooks"
