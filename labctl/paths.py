"""Where labctl keeps its state (labs, keys) and its caches (debootstrap packages), and where
it finds the files it ships (playbooks, example inventories).

``LABCTL_HOME`` (default ``~/.local/share/labctl``) holds one folder per lab;
``LABCTL_CACHE`` (default ``~/.cache/labctl``) holds downloads worth keeping between runs.
Tests point both at their own folders so they never touch a user's lab.
"""

from __future__ import annotations

import os
from importlib import resources
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
    """The checkout: the folder above the package (playbooks/ and inventories/ live there)."""
    return Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The folder that holds playbooks/ and inventories/.

    An installed labctl carries them in the package as ``labctl/_data`` (pyproject.toml maps the
    repository's top-level folders there); a checkout or an editable install has them at the
    top level of the checkout."""
    shipped = resources.files(__package__) / "_data"
    if shipped.is_dir():
        return Path(str(shipped))
    return project_root()


def playbooks_dir() -> Path:
    """The playbooks (site.yml and the collection of its roles); ``LABCTL_PLAYBOOKS`` overrides."""
    env = os.environ.get("LABCTL_PLAYBOOKS")
    return Path(env) if env else data_dir() / "playbooks"


#: the collection that holds labctl's roles (site.yml names them labctl.lab.docker_engine, ...)
COLLECTION = "labctl.lab"


def collections_dir(playbooks: Path | None = None) -> Path:
    """The collections folder beside site.yml (ansible's ANSIBLE_COLLECTIONS_PATH entry)."""
    return (playbooks or playbooks_dir()) / "collections"


def collection_dir(playbooks: Path | None = None) -> Path:
    """The collection labctl.lab itself (galaxy.yml, roles/): what ``ansible-galaxy collection
    build`` packs for anyone's own playbooks."""
    namespace, name = COLLECTION.split(".")
    return collections_dir(playbooks) / "ansible_collections" / namespace / name


def inventories_dir() -> Path:
    """The example inventories (article.ini, example.ini), to copy and fill in."""
    return data_dir() / "inventories"
