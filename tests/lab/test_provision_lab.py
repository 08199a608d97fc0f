"""The provisioning roles for real on lab hosts (issue 4): a pinned distro engine on a host
without Docker, the static-tarball method, a safe storage-driver switch, and the raw/script path
on a host whose only Python is 2.7 and on one with no Python at all. Idempotence and --check."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labctl.hosts import HostRecord
from labctl.transport import SSHTransport
from tests.helpers import docker_lab_up, host_named, labctl, remote

pytestmark = pytest.mark.lab

HOSTS = (
    "bookworm",  # storage switch
    "bookworm/docker=no,name=pinned",  # docker.io pinned from the Debian mirror
    "bookworm/docker=no,name=tarball",  # static-tarball method
    "bullseye/python=2.7",  # raw/script path, Python 2.7 only
    "bookworm/python=none",  # raw/script path, no Python at all
)


RESULTS: list[Path] = []  # the module's results folder (ansible artifacts), set by plab


@pytest.fixture(scope="module")
def plab(
    labctl_home: Path, docker_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    RESULTS[:] = [tmp_path_factory.mktemp("provision-results")]
    name = f"p{os.getpid()}"
    with docker_lab_up(docker_client, name=name, hosts=HOSTS, disk_size="512MiB") as state:
        yield state


def provision(lab: Any, limit: str, *extra: str) -> subprocess.CompletedProcess[str]:
    results = ("--results", str(RESULTS[0]))
    return labctl("provision", "-i", str(lab.inventory), "--limit", limit, *results, *extra)


def switch_to_vfs(lab: Any, limit: str) -> subprocess.CompletedProcess[str]:
    """Provision the vfs storage driver, exporting and wiping what the old driver held."""
    return provision(
        lab, limit, "-e", "docker_storage_driver=vfs", "-e", "docker_storage_export_and_wipe=true"
    )


def _task_names() -> list[str]:
    """The tasks ansible ran in the newest provisioning of this module (its job events)."""
    import json

    runs = sorted((RESULTS[0] / "provision").iterdir(), key=lambda p: p.stat().st_mtime)
    events = runs[-1] / "artifacts" / "provision" / "job_events"
    names = []
    for f in sorted(events.glob("*.json")):
        ev = json.loads(f.read_text())
        if ev.get("event") == "runner_on_ok":
            names.append(ev["event_data"]["task"])
    return names


def probe_storage(lab: Any, limit: str, results: Path) -> subprocess.CompletedProcess[str]:
    inv = str(lab.inventory)
    return labctl(
        "probe", "-i", inv, "--limit", limit, "--results", str(results),
        "--experiments", "storage-location", timeout=600,
    )  # fmt: skip


def server_version(h: HostRecord) -> str:
    return remote(h, "docker version --format '{{.Server.Version}}'").strip()


def test_pinned_distro_engine_on_a_host_without_docker(plab: Any, tmp_path: Path) -> None:
    pinned = host_named(plab, "pinned")
    assert "no docker" in remote(pinned, "command -v docker || echo no docker")
    proc = provision(plab, "pinned", "-e", "docker_engine_version=20.10.24")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pinned: provisioned" in proc.stdout
    assert server_version(pinned).startswith("20.10.24")
    assert "docker.io" in remote(pinned, "apt-mark showhold")
    # a rerun asking the same: one check, the play ends (the warm-rerun fast path)
    warm = provision(plab, "pinned", "-e", "docker_engine_version=20.10.24")
    assert warm.returncode == 0, warm.stdout + warm.stderr
    assert "pinned: already provisioned as asked" in warm.stdout, warm.stdout + warm.stderr
    assert "warm: Docker 20.10.24" in warm.stderr
    events = _task_names()
    assert len(events) <= 3 and "Install and start the engine with modules" not in events, events
    # every task again (--full): the roles are idempotent
    again = provision(plab, "pinned", "--full", "-e", "docker_engine_version=20.10.24")
    assert "pinned: provisioned (0 changed)" in again.stdout, again.stdout + again.stderr
    # the engine no longer answering as asked: the check says why and the play runs
    remote(pinned, "/usr/local/sbin/labctl-dockerd stop")
    cold = provision(plab, "pinned", "-e", "docker_engine_version=20.10.24")
    assert cold.returncode == 0, cold.stdout + cold.stderr
    assert "cold: the engine does not answer" in cold.stderr
    assert server_version(pinned).startswith("20.10.24")
    # no version asked and docker.io there: the package manager does not run at all
    plain = provision(plab, "pinned", "--full")
    assert "pinned: provisioned (0 changed)" in plain.stdout, plain.stdout + plain.stderr
    events = _task_names()
    assert "Look for the distribution's engine package" in events, events
    assert not [t for t in events if t.startswith(("Refresh the apt", "Install Docker"))], events
    # a version the mirror does not offer: one clear line, nothing changed
    bad = provision(plab, "pinned", "-e", "docker_engine_version=19.03.0")
    assert bad.returncode != 0
    assert "docker.io 19.03.0 is not offered by this host's apt sources" in bad.stdout + bad.stderr
    # the probe runs on the provisioned host unchanged
    probe = probe_storage(plab, "pinned", tmp_path)
    assert probe.returncode == 0, probe.stderr


def test_static_tarball_method(plab: Any, tmp_path: Path) -> None:
    source, target = host_named(plab, "bookworm"), host_named(plab, "tarball")
    # a static-tarball layout (docker/docker, docker/dockerd, ...) from Debian's package files
    remote(
        source,
        "rm -rf /tmp/tb && mkdir -p /tmp/tb/docker && "
        "for b in docker dockerd containerd containerd-shim-runc-v2 runc docker-proxy docker-init;"
        ' do cp "$(command -v $b)" /tmp/tb/docker/; done && '
        "tar -czf /tmp/docker-20.10.24.tgz -C /tmp/tb docker && rm -rf /tmp/tb",
    )
    with SSHTransport(source) as t:
        blob = t.read("/tmp/docker-20.10.24.tgz")
        t.run("rm -f /tmp/docker-20.10.24.tgz")
    assert blob
    tarball = tmp_path / "docker-20.10.24.tgz"
    tarball.write_bytes(blob)
    sha = hashlib.sha256(blob).hexdigest()
    # Debian's binaries are not static: give the target the shared libraries dockerd needs
    remote(target, "apt-get update -qq && apt-get install -y -qq libdevmapper1.02.1 >/dev/null")
    common = [
        "-e",
        "docker_engine_method=binary",
        "-e",
        f"docker_engine_binary_src={tarball}",
        "-e",
        "docker_engine_version=20.10.24",
    ]
    wrong = provision(plab, "tarball", *common, "-e", f"docker_engine_binary_sha256={'0' * 64}")
    assert wrong.returncode != 0
    assert "has sha256" in wrong.stdout + wrong.stderr
    assert "no docker" in remote(target, "command -v dockerd || echo no docker")
    proc = provision(plab, "tarball", *common, "-e", f"docker_engine_binary_sha256={sha}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert remote(target, "command -v dockerd").strip() == "/usr/local/bin/dockerd"
    assert server_version(target).startswith("20.10.24")
    again = provision(
        plab, "tarball", "--full", *common, "-e", f"docker_engine_binary_sha256={sha}"
    )
    assert "tarball: provisioned (0 changed)" in again.stdout, again.stdout + again.stderr


def _driver(h: HostRecord) -> str:
    return remote(h, "docker info --format '{{.Driver}}'").strip()


def _tiny_container(h: HostRecord, name: str) -> None:
    remote(
        h,
        "docker image inspect tiny >/dev/null 2>&1 || "
        "tar -c -C / bin/dash lib/x86_64-linux-gnu/libc.so.6 lib64/ld-linux-x86-64.so.2 "
        "2>/dev/null | docker import - tiny >/dev/null; "
        f"docker create --name {name} tiny /bin/dash >/dev/null",
    )


def test_storage_switch_refuses_then_exports_and_switches_back(plab: Any) -> None:
    h = host_named(plab, "bookworm")
    _tiny_container(h, "keepme")
    refused = provision(plab, "bookworm", "-e", "docker_storage_driver=vfs")
    assert refused.returncode != 0
    assert "1 container(s) exist on driver overlay2" in refused.stdout + refused.stderr
    assert _driver(h) == "overlay2"
    check = provision(plab, "bookworm", "--check", "-e", "docker_storage_driver=vfs")
    assert check.returncode != 0 or _driver(h) == "overlay2"
    assert _driver(h) == "overlay2"
    ok = switch_to_vfs(plab, "bookworm")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert _driver(h) == "vfs"
    assert "keepme.tar" in remote(h, "ls -R /var/backups/labctl-docker")
    again = provision(plab, "bookworm", "--full", "-e", "docker_storage_driver=vfs")
    assert "bookworm: provisioned (0 changed)" in again.stdout, again.stdout + again.stderr
    back = provision(plab, "bookworm", "-e", "docker_storage_driver=overlay2")
    assert back.returncode == 0, back.stdout + back.stderr
    assert _driver(h) == "overlay2"


def test_raw_path_on_python27_only_and_python_less_hosts(plab: Any, tmp_path: Path) -> None:
    py27, nopy = host_named(plab, "bullseye-py27"), host_named(plab, "bookworm-nopython")
    assert "none" in remote(py27, "command -v python3 || echo none")
    assert "none" in remote(nopy, "command -v python3 python2.7 python || echo none")
    for h in (py27, nopy):
        remote(h, "/usr/local/sbin/labctl-dockerd stop")
    proc = provision(plab, "bullseye-py27,bookworm-nopython")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "python 2.7 (/usr/bin/python2.7), raw/script path" in proc.stderr
    assert "python none (-), raw/script path" in proc.stderr
    for h in (py27, nopy):
        assert server_version(h)
    # the storage switch through the script path, on the host with no Python (sed/awk JSON)
    sw = switch_to_vfs(plab, "bookworm-nopython")
    assert sw.returncode == 0, sw.stdout + sw.stderr
    assert _driver(nopy) == "vfs"
    assert '"storage-driver": "vfs"' in remote(nopy, "cat /etc/docker/daemon.json")
    again = provision(plab, "bookworm-nopython", "--full", "-e", "docker_storage_driver=vfs")
    assert "bookworm-nopython: provisioned (0 changed)" in again.stdout, again.stderr
    again27 = provision(plab, "bullseye-py27", "--full")
    assert "bullseye-py27: provisioned (0 changed)" in again27.stdout, again27.stderr
    # the warm check needs no Python: raw only
    warm = provision(plab, "bookworm-nopython", "-e", "docker_storage_driver=vfs")
    assert "bookworm-nopython: already provisioned as asked" in warm.stdout, warm.stderr
    # the agent runs under python2.7; a host with no Python gets one clear line
    probe = probe_storage(plab, "bullseye-py27,bookworm-nopython", tmp_path)
    assert "bookworm-nopython: no Python interpreter on the host" in probe.stderr
    assert "bullseye-py27:" not in "".join(
        ln for ln in probe.stderr.splitlines() if ln.startswith("problem:")
    )


def test_secrets_stay_out_of_output_and_run_folders(plab: Any) -> None:
    secret = "S3cret-become-pw!"
    proc = provision(plab, "bookworm", "-e", f"ansible_become_password={secret}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert secret not in proc.stdout + proc.stderr
    leaks = [
        str(p)
        for p in RESULTS[0].rglob("*")
        if p.is_file() and secret in p.read_text(encoding="utf-8", errors="replace")
    ]
    assert leaks == []


def test_an_uploaded_engine_never_lands_where_another_user_can_reach(
    plab: Any, tmp_path: Path
) -> None:
    """The script path copies a controller file with scp: to a fresh private folder, never to
    a name in /tmp another local user could make first (here a link to a file of root's), and
    the script checks and installs root's own copy of it (issue 21)."""
    from tests.security.attacker import as_user

    nopy = host_named(plab, "bookworm-nopython")
    engine = tmp_path / "docker-planted"
    engine.write_bytes(b"not an engine")
    remote(nopy, "echo victim > /etc/labctl-victim && "
                 + as_user("ln -s /etc/labctl-victim /tmp/docker-planted"))  # fmt: skip
    try:
        proc = provision(plab, "bookworm-nopython", "--full", "-e", "docker_engine_method=binary",
                         "-e", f"docker_engine_binary_src={engine}",
                         "-e", f"docker_engine_binary_sha256={'0' * 64}")  # fmt: skip
        assert proc.returncode != 0
        assert "docker-planted has sha256" in proc.stdout + proc.stderr
        assert remote(nopy, "cat /etc/labctl-victim").strip() == "victim"
        assert remote(nopy, "ls -d /tmp/labctl-engine.* 2>/dev/null; true").strip() == ""
        assert remote(nopy, "stat -c '%a %U' /var/cache/labctl-docker").strip() == "700 root"
    finally:
        remote(nopy, "rm -f /etc/labctl-victim /tmp/docker-planted")
