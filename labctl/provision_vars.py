"""Every inventory variable the provisioning playbook reads, and the checks made before it runs.

One table serves ``labctl provision --help-vars`` and the preflight that fails fast with the list
of what the user must still fill in (e.g. the Docker 1.5.0 source of inventories/article.ini).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .hosts import HostRecord


@dataclass(frozen=True)
class Var:
    name: str
    default: str
    meaning: str


VARIABLES: tuple[Var, ...] = (
    Var("ansible_host / ansible_port / ansible_user", "name / 22 / root", "where and as whom"),
    Var("ansible_ssh_private_key_file", "-", "SSH key (ansible and the probe)"),
    Var("labctl_known_hosts", "~/.ssh/known_hosts", "known_hosts file with the host's key"),
    Var("labctl_disposable", "false", "true: --exhaust may drive this host to exhaustion"),
    Var("labctl_agent_python", "first of python3/python2", "interpreter for the probe agent"),
    Var("labctl_host_dir", "/var/lib/labctl (root)", "labctl's folder on the host (root-only)"),
    Var("labctl_warm_enabled", "true", "false: every task runs on a host provisioned as asked"),
    Var("ansible_pipelining", "true", "false for a host whose sudo needs a tty (requiretty)"),
    Var("docker_engine_method", "distro", "distro (the distribution's package) or binary"),
    Var("docker_engine_version", '""', "version `docker version` must report; pins the package"),
    Var("docker_engine_debian_package", "docker.io", "package on Debian/Ubuntu"),
    Var("docker_engine_redhat_package", "docker-io (EL6) / docker", "package on CentOS/RHEL"),
    Var("docker_engine_redhat_repo_baseurl", '""', "repo holding it (EPEL 6 / EL7 extras archive)"),
    Var("docker_engine_redhat_repo_gpgcheck", "false", "check that repository's signatures"),
    Var("docker_engine_binary_url", '""', "binary method: URL of a static binary or tarball"),
    Var("docker_engine_binary_src", '""', "binary method: the same as a file on the controller"),
    Var("docker_engine_binary_sha256", '""', "binary method: its sha256 (required)"),
    Var("docker_engine_binary_dir", "/usr/local/bin", "where the binary method installs"),
    Var("docker_engine_daemon_args", "[]", "extra daemon flags for the service it writes"),
    Var(
        "docker_engine_service_manager",
        "auto",
        "era init file: systemd, systemd-centos, sysvinit-epel, sysvinit-docker, upstart",
    ),
    Var("docker_engine_systemd_unit", "auto", "binary+systemd: upstream (1.5.0's own) or labctl"),
    Var("docker_engine_wait_seconds", "60", "how long to wait for the engine to answer"),
    Var("docker_storage_driver", '""', "storage driver to set (devicemapper, aufs, overlay2...)"),
    Var("docker_storage_opts", "[]", "--storage-opt values, e.g. dm.basesize=10G"),
    Var("docker_storage_config", "auto", "daemon_json, sysconfig, sysconfig_storage, default_opts"),
    Var("docker_storage_export_and_wipe", "false", "allow a switch with containers present"),
    Var("docker_storage_backup_dir", "/var/backups/labctl-docker", "where exports go"),
    Var("docker_storage_root", "/var/lib/docker", "the engine's root, cleared on a switch"),
)

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_PLACEHOLDER = re.compile(r"^(|CHANGE_?ME|FILL_?ME|TODO|<.*>)$", re.IGNORECASE)


def help_text() -> str:
    width = max(len(v.name) for v in VARIABLES)
    dwidth = max(len(v.default) for v in VARIABLES)
    lines = [f"{'variable':<{width}}  {'default':<{dwidth}}  meaning"]
    lines += [f"{v.name:<{width}}  {v.default:<{dwidth}}  {v.meaning}" for v in VARIABLES]
    return "\n".join(lines)


def _missing(value: object) -> bool:
    return value is None or bool(_PLACEHOLDER.match(str(value).strip()))


def preflight(host: HostRecord) -> list[str]:
    """What this host's variables still lack before the playbook can succeed."""
    hv = host.vars
    todo: list[str] = []
    if _missing(hv.get("ansible_host", host.name)):
        todo.append("ansible_host (the host's address)")
    method = str(hv.get("docker_engine_method", "distro"))
    if method not in ("distro", "binary"):
        todo.append(f"docker_engine_method: distro or binary, not {method!r}")
    if method == "binary":
        if _missing(hv.get("docker_engine_binary_url")) and _missing(
            hv.get("docker_engine_binary_src")
        ):
            todo.append("docker_engine_binary_url or docker_engine_binary_src (the engine)")
        sha = hv.get("docker_engine_binary_sha256")
        if _missing(sha) or not _SHA256.match(str(sha)):
            todo.append("docker_engine_binary_sha256 (64 hex digits)")
    return todo
