"""Per-host variants of a docker lab, for real: inner storage drivers and backing filesystems,
and lab hosts without docker.io or without python3.

Each test makes one small lab (its own name and LABCTL_HOME), checks it over SSH (lab key,
RejectPolicy, the lab's known_hosts) and always takes it down. Images are built on first use
(about a minute each, in parallel), then cached.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.lab

docker = pytest.importorskip("docker")

from labctl.drivers.base import LabState, MiB  # noqa: E402
from labctl.drivers.docker import DockerLab, DockerLabSpec  # noqa: E402
from labctl.hosts import HostRecord  # noqa: E402
from labctl.transport import SSHTransport  # noqa: E402
from tests.helpers import checked, lab_docker_client  # noqa: E402

DISK = 512 * MiB
MEMORY = 768 * MiB

#: a tiny inner image made on the lab host from its own files (no registry): dash and dd
TINY_IMAGE = (
    "set -e; files=$(for b in /bin/dash /bin/dd; do echo $b; "
    "ldd $b | grep -o '/[^ ]*'; done | sort -u); "
    "tar -chf - $files 2>/dev/null | docker import - labctl-t-tiny >/dev/null"
)


@pytest.fixture
def make_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """make_lab(suffix, hosts) -> (driver, state, seconds); every lab made is taken down."""
    client = lab_docker_client()
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path / "home"))
    made: list[DockerLab] = []

    def make(suffix: str, hosts: tuple[str, ...]) -> tuple[DockerLab, LabState, float]:
        spec = DockerLabSpec(
            name=f"v{os.getpid()}{suffix}",
            hosts=hosts,  # type: ignore[arg-type]  # strings, parsed by the spec
            disk_size=DISK,
            memory=MEMORY,
        )
        spec.validate()
        driver = DockerLab(spec, client=client)
        made.append(driver)
        started = time.monotonic()
        state = driver.up()
        return driver, state, time.monotonic() - started

    yield make
    for driver in made:
        report = driver.down()
        assert report.ok, report.problems


def _ssh(rec: HostRecord) -> SSHTransport:
    return SSHTransport(rec).connect()


def _inner_container_runs(ssh: SSHTransport) -> None:
    checked(ssh, TINY_IMAGE)
    out = checked(ssh, "docker run --rm --net=none labctl-t-tiny /bin/dash -c 'echo inner-ok'")
    assert out.strip() == "inner-ok"


def _inventory_hosts(state: LabState) -> dict[str, Any]:
    text = state.inventory.read_text()
    inv = json.loads("\n".join(x for x in text.splitlines() if not x.startswith("#")))
    hosts: dict[str, Any] = inv["all"]["children"][f"labctl_{state.lab}"]["hosts"]
    return hosts


def _assert_gone(client: Any, driver: DockerLab) -> None:
    name = driver.lab
    report = driver.down()
    assert report.problems == []
    assert client.containers.list(all=True, filters={"label": f"labctl.lab={name}"}) == []
    assert client.networks.list(names=[f"labctl-{name}"]) == []
    assert driver.lab_loops() == []
    for bf in Path("/sys/block").glob("loop*/loop/backing_file"):
        assert f"labctl-disk-{name}-" not in bf.read_text()


def test_storage_drivers_and_backing_filesystems(make_lab: Any) -> None:
    driver, state, took = make_lab(
        "d", ("bookworm/driver=vfs", "bookworm/driver=btrfs", "bookworm/fs=xfs")
    )
    assert [h.name for h in state.hosts] == ["bookworm-vfs", "bookworm-btrfs", "bookworm-xfs"]
    want = {
        "bookworm-vfs": ("vfs", "ext4"),
        "bookworm-btrfs": ("btrfs", "btrfs"),
        "bookworm-xfs": ("overlay2", "xfs"),
    }
    inv = _inventory_hosts(state)
    found: dict[str, dict[str, str]] = {}
    for rec in state.hosts:
        drv, fs = want[rec.name]
        assert rec.labels["storage_driver"] == drv and rec.labels["backing_fs"] == fs
        assert inv[rec.name]["labctl_storage_driver"] == drv
        assert inv[rec.name]["labctl_backing_fs"] == fs
        assert inv[rec.name]["ansible_python_interpreter"] == "/usr/bin/python3"
        # ext4 has the inode count it was made with; xfs and btrfs allocate inodes on demand
        if fs == "ext4":
            assert int(rec.labels["disk_inodes"]) >= 20000
        else:
            assert rec.labels["disk_inodes"] == "dynamic"
        ssh = _ssh(rec)
        try:
            assert checked(ssh, "docker info --format '{{.Driver}}'").strip() == drv
            fstype, source = checked(ssh, "findmnt -n -o FSTYPE,SOURCE /var/lib/docker").split()
            assert fstype == fs and re.match(r"^/dev/loop\d+$", source), (fstype, source)
            status = json.loads(
                checked(ssh, "docker info --format '{{json .DriverStatus}}'") or "[]"
            )
            backing = dict(map(tuple, status or [])).get("Backing Filesystem")
            if drv == "overlay2":
                assert backing == {"ext4": "extfs"}.get(fs, fs), status
            size = int(checked(ssh, "df -B1 --output=size /var/lib/docker").splitlines()[1])
            assert 0.8 * DISK <= size <= DISK, size
            # an inner container runs (image made on the spot from the host's own files)
            _inner_container_runs(ssh)
            # what the engine said to a per-container size, and whether it contains a writer
            opt = rec.labels["storage_opt_size"]
            assert opt in ("supported", "refused"), opt
            assert inv[rec.name]["labctl_storage_opt_size"] == opt
            result = {"storage_opt_size": opt}
            if opt == "supported":
                res = ssh.run(
                    "docker run --rm --net=none --storage-opt size=64m labctl-t-tiny "
                    "/bin/dd if=/dev/zero of=/big bs=1M count=200",
                    timeout=120,
                )
                rc, err = res.exit_status, res.stderr
                result["dd"] = f"exit {rc}: {err.strip().splitlines()[-1:]}"
                assert rc != 0 and "200+0 records out" not in err, (rc, err)
            found[rec.name] = result
        finally:
            ssh.close()
    # on this kind of machine: the btrfs driver on btrfs with quota takes a size, vfs on ext4
    # does not, xfs without project quota (kernel refuses prjquota) does not
    assert found["bookworm-vfs"]["storage_opt_size"] == "refused"
    assert found["bookworm-btrfs"]["storage_opt_size"] == "supported", found
    print(f"\nlab up {took:.1f} s; storage-opt size: {found}")
    _assert_gone(lab_docker_client(), driver)


def test_hosts_without_docker_or_python(make_lab: Any) -> None:
    driver, state, took = make_lab(
        "i", ("bookworm/docker=no", "bookworm/python=none", "bullseye/python=2.7")
    )
    names = [h.name for h in state.hosts]
    assert names == ["bookworm-nodocker", "bookworm-nopython", "bullseye-py27"]
    recs = {h.name: h for h in state.hosts}
    inv = _inventory_hosts(state)

    nod, nopy, py27 = recs["bookworm-nodocker"], recs["bookworm-nopython"], recs["bullseye-py27"]
    assert nod.labels["docker_preinstalled"] == "no"
    assert inv[nod.name]["labctl_docker_preinstalled"] is False
    assert nopy.labels["python"] == "none" and nopy.agent_python is None
    assert "ansible_python_interpreter" not in inv[nopy.name]
    assert inv[nopy.name]["labctl_python"] == "none"
    assert py27.agent_python == "/usr/bin/python2.7"
    assert inv[py27.name]["ansible_python_interpreter"] == "/usr/bin/python2.7"
    assert inv[py27.name]["labctl_agent_python"] == "/usr/bin/python2.7"

    for rec in state.hosts:
        ssh = _ssh(rec)
        try:
            assert checked(ssh, "hostname").strip() == rec.name
            fstype, source = checked(ssh, "findmnt -n -o FSTYPE,SOURCE /var/lib/docker").split()
            assert fstype == "ext4" and source.startswith("/dev/loop")
            pkgs = checked(ssh, "dpkg-query -W -f '${Package}\\n'").split()
            has_docker = ssh.run("command -v docker").exit_status == 0
            has_py3 = ssh.run("command -v python3").exit_status == 0
            pythons = [p for p in pkgs if "python" in p]
            if rec is nod:
                assert not has_docker and "docker.io" not in pkgs and has_py3
                conf = json.loads(checked(ssh, "cat /etc/docker/daemon.json"))
                assert conf["storage-driver"] == "overlay2" and conf["bip"].startswith("10.213.")
                assert ssh.run("labctl-dockerd status").exit_status == 3
            else:
                assert has_docker and not has_py3, (rec.name, has_docker, has_py3)
                assert checked(ssh, "docker info --format '{{.Driver}}'").strip() == "overlay2"
            if rec is nopy:
                assert pythons == [], pythons
                assert ssh.run("command -v python || command -v python2.7").exit_status != 0
            if rec is py27:
                assert not [p for p in pythons if "python3" in p], pythons
                ver = checked(
                    ssh, "/usr/bin/python2.7 -c 'import json, sys; print(sys.version_info[:2])'"
                )
                assert ver.strip() == "(2, 7)"
        finally:
            ssh.close()

    # the image without docker is ready for provisioning: docker.io from the Debian mirror,
    # then the helper starts the engine on the prepared disk with the prepared settings
    ssh = _ssh(nod)
    try:
        started = time.monotonic()
        checked(
            ssh,
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
            "apt-get install -y -qq --no-install-recommends docker.io >/dev/null",
            timeout=300,
        )
        installed = time.monotonic() - started
        checked(ssh, "labctl-dockerd start", timeout=90)
        info = checked(
            ssh, "docker info --format '{{.ServerVersion}} {{.Driver}} {{.DockerRootDir}}'"
        )
        assert info.split()[1:] == ["overlay2", "/var/lib/docker"], info
        _inner_container_runs(ssh)
        print(f"\nlab up {took:.1f} s; docker.io installed in {installed:.1f} s: {info.strip()}")
    finally:
        ssh.close()
    _assert_gone(lab_docker_client(), driver)


def test_run_on_a_named_lab_probes_exactly_its_hosts(make_lab: Any, tmp_path: Path) -> None:
    """`labctl run --lab NAME` takes the lab as it was made: a stopped host comes back, no
    default suite is added, the inventory keeps its hosts (issue 12: a 30-host lab was run as
    the three default suites)."""
    from tests.helpers import labctl, only_run

    driver, state, _ = make_lab("r", ("bookworm/name=c1", "bookworm/name=c2"))
    client = lab_docker_client()
    client.containers.get(driver.container_name("c2")).stop(timeout=5)
    results = tmp_path / "results"
    proc = labctl("run", "--lab", driver.lab, "--no-provision", "--experiments",
                  "storage-location", "--results", str(results))  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    run = only_run(results)
    assert sorted(p.stem for p in (run / "hosts").glob("*.json")) == ["c1", "c2"]
    inventory = state.inventory.read_text()
    for suite in ("bullseye", "trixie"):
        assert suite not in inventory
    names = {c.name for c in client.containers.list(filters={"name": f"labctl-lab-{driver.lab}-"})}
    assert names == {driver.container_name("c1"), driver.container_name("c2")}
