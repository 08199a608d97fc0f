"""Where labctl keeps its state (labs, keys) and its caches (debootstrap packages).

``LABCTL_HOME`` (default ``~/.local/share/labctl``) holds one folder per lab;
``LABCTL_CACHE`` (default ``~/.cache/labctl``) holds downloads worth keeping between runs.
Tests point both at their own folders so they never touch a user's lab.
"""

from __future__ import annotations

import os
from pathlib import Path

from .agentpack import build_agent


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
    labctl/agent/ into the cache when its sources changed (labctl/agentpack.py)."""
    return build_agent(cache_dir() / "agent")


def project_root() -> Path:
    """The checkout (or install prefix) that holds playbooks/ next to the package."""
    return Path(__file__).resolve().parent.parent


def playbooks_dir() -> Path:
    env = os.environ.get("LABCTL_PLAYBOOKS")
    return Path(env) if env else project_root() / "playbooks"
