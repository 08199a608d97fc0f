"""The docker driver for real: three Debian lab hosts with their own sshd and inner dockerd.

Needs a Docker engine, root and debootstrap (images are built on first use, ~1-2 min, then
cached). Every lab made here is named after the test session and always taken down.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

docker = pytest.importorskip("docker")

from labctl import debootstrap  # noqa: E402
from labctl.drivers.base import DownReport, MiB  # noqa: E402
from labctl.drivers.docker import DockerLab, DockerLabSpec  # noqa: E402
from labctl.transport import SSHTransport  # noqa: E402
from tests.helpers import UpLab, checked, host_named, lab_docker_client  # noqa: E402

SUITES = ("bullseye", "bookworm", "trixie")
DOCKER_VERSIONS = {"bullseye": r"^20\.10\.5", "bookworm": r"^20\.10\.24", "trixie": r"^26\."}
DISK = 512 * MiB
INODES = 20000
MEMORY = 768 * MiB
PIDS = 512


Lab = UpLab[DockerLab]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    client = lab_docker_client()
    home = tmp_path_factory.mktemp("labctl-home")
    messages: list[tuple[str, str]] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABCTL_HOME", str(home))
        spec = DockerLabSpec(
            name=f"t{os.getpid()}",
            suites=SUITES,
            disk_size=DISK,
            disk_inodes=INODES,
            memory=MEMORY,
            pids_limit=PIDS,
        )
        driver = DockerLab(spec, client=client, progress=lambda h, m: messages.append((h, m)))
        try:
            started = time.monotonic()
            state = driver.up()
            yield UpLab(driver, state, messages, time.monotonic() - started, client)
        finally:
            driver.down()


def _ssh(lab: Lab, host: str) -> SSHTransport:
    return SSHTransport(host_named(lab.state, host)).connect()


def test_up_returns_hosts_and_files(lab: Lab) -> None:
    st = lab.state
    assert [h.name for h in st.hosts] == list(SUITES)
    assert st.key_file.is_file() and (st.key_file.stat().st_mode & 0o777) == 0o600
    assert st.key_file.with_name("id_ed25519.pub").is_file()
    ports = set()
    for h in st.hosts:
        assert h.address == "127.0.0.1"
        assert h.user == "root" and h.disposable
        assert h.key_file == st.key_file and h.known_hosts == st.known_hosts
        assert h.labels == {
            "driver": "docker",
            "lab": st.lab,
            "suite": h.name,
            "storage_driver": "overlay2",
            "backing_fs": "ext4",
            "disk_inodes": h.labels["disk_inodes"],
            # overlay2 on ext4 has no project quota: the engine refuses a per-container size
            "storage_opt_size": "refused",
            "docker_preinstalled": "yes",
            "python": "python3",
        }
        assert INODES <= int(h.labels["disk_inodes"]) <= INODES * 1.1
        assert h.agent_python == ("/usr/bin/python2.7" if h.name == "bullseye" else None)
        ports.add(h.port)
    assert len(ports) == 3
    known = st.known_hosts.read_text().splitlines()
    assert len(known) == 3
    for line in known:
        assert re.match(r"^\[127\.0\.0\.1\]:\d+ ssh-ed25519 AAAA\S+$", line), line
    assert {int(line.split()[0].split(":")[1]) for line in known} == ports
    # the recorded key is the one the host made at its first start (read from the container)
    for h in st.hosts:
        c = lab.client.containers.get(lab.driver.container_name(h.name))
        rc, out = c.exec_run(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
        assert rc == 0
        assert f"[127.0.0.1]:{h.port} {' '.join(out.decode().split()[:2])}" in known


def test_inventory(lab: Lab) -> None:
    st = lab.state
    text = st.inventory.read_text()
    inv = json.loads("\n".join(x for x in text.splitlines() if not x.startswith("#")))
    hosts = inv["all"]["children"][f"labctl_{st.lab}"]["hosts"]
    assert list(hosts) == list(SUITES)
    for rec in st.hosts:
        hv = hosts[rec.name]
        assert hv["ansible_host"] == "127.0.0.1" and hv["ansible_port"] == rec.port
        assert hv["ansible_user"] == "root"
        assert hv["ansible_ssh_private_key_file"] == str(st.key_file.resolve())
        assert f"UserKnownHostsFile={st.known_hosts.resolve()}" in hv["ansible_ssh_common_args"]
        assert "StrictHostKeyChecking=yes" in hv["ansible_ssh_common_args"]
        assert hv["ansible_python_interpreter"] == "/usr/bin/python3"
        assert hv["labctl_disposable"] is True and hv["labctl_driver"] == "docker"
        assert hv["labctl_lab"] == st.lab and hv["labctl_suite"] == rec.name
        assert hv["labctl_storage_driver"] == "overlay2"
        assert hv["labctl_backing_fs"] == "ext4" and hv["labctl_python"] == "/usr/bin/python3"
        assert hv["labctl_host_spec"] == rec.name and hv["labctl_docker_preinstalled"] is True
        assert ("labctl_agent_python" in hv) == (rec.name == "bullseye")


@pytest.mark.parametrize("host", SUITES)
def test_ssh_and_inner_docker(lab: Lab, host: str) -> None:
    ssh = _ssh(lab, host)
    try:
        assert checked(ssh, "uname -r").strip() == os.uname().release  # shared kernel
        assert checked(ssh, "hostname").strip() == host
        info = checked(ssh, "docker info --format '{{.ServerVersion}} {{.Driver}}'").split()
        assert re.match(DOCKER_VERSIONS[host], info[0]), info
        assert info[1] == "overlay2"
        # /var/lib/docker: ext4 on a loop device, about the configured size and inode count
        fstype, source = checked(ssh, "findmnt -n -o FSTYPE,SOURCE /var/lib/docker").split()
        assert fstype == "ext4" and re.match(r"^/dev/loop\d+$", source), (fstype, source)
        size, itotal = map(int, checked(ssh, "df -B1 --output=size,itotal /var/lib/docker")
                           .splitlines()[1].split())  # fmt: skip
        assert 0.9 * DISK <= size <= DISK, size
        assert INODES <= itotal <= INODES * 1.1, itotal
        # an inner container really runs (image made on the spot, no registry)
        out = checked(
            ssh,
            "set -e; tar -chf - /bin/dash /lib/x86_64-linux-gnu/libc.so.6 "
            "/lib64/ld-linux-x86-64.so.2 2>/dev/null | docker import - labctl-t-dash >/dev/null; "
            "docker run --rm --net=none labctl-t-dash /bin/dash -c 'echo inner-ok'",
        )
        assert out.strip() == "inner-ok"
        if host == "bullseye":
            ver = checked(ssh, "/usr/bin/python2.7 -c 'import sys; print(sys.version_info[:2])'")
            assert ver.strip() == "(2, 7)"
    finally:
        ssh.close()


def test_bips_differ(lab: Lab) -> None:
    bips = set()
    for rec in lab.state.hosts:
        c = lab.client.containers.get(lab.driver.container_name(rec.name))
        rc, out = c.exec_run(["ip", "-4", "-o", "addr", "show", "docker0"])
        assert rc == 0, out
        m = re.search(r"inet (\S+)", out.decode())
        assert m, out
        bips.add(m.group(1))
    assert len(bips) == 3


def test_container_limits_and_publishing(lab: Lab) -> None:
    for rec in lab.state.hosts:
        c = lab.client.containers.get(lab.driver.container_name(rec.name))
        hc = c.attrs["HostConfig"]
        assert hc["Memory"] == MEMORY
        assert hc["MemorySwap"] == MEMORY
        assert hc["PidsLimit"] == PIDS
        assert not hc.get("Privileged")
        assert hc["PortBindings"]["22/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": ""}]
        bound = c.attrs["NetworkSettings"]["Ports"]["22/tcp"]
        assert {b["HostIp"] for b in bound} == {"127.0.0.1"}
        assert c.labels["labctl.lab"] == lab.state.lab and c.labels["labctl.host"] == rec.name
        assert list(c.attrs["NetworkSettings"]["Networks"]) == [f"labctl-{lab.state.lab}"]


def test_status(lab: Lab) -> None:
    sts = {s.name: s for s in lab.driver.status()}
    assert set(sts) == set(SUITES)
    for rec in lab.state.hosts:
        s = sts[rec.name]
        assert s.state == "running" and s.port == rec.port and s.address == "127.0.0.1"
        assert s.image and s.image.startswith(f"labctl-host:{rec.name}-")
        assert re.match(DOCKER_VERSIONS[rec.name], s.details["docker_version"])


def test_dockerd_helper_stop_start(lab: Lab) -> None:
    ssh = _ssh(lab, "bookworm")
    try:
        checked(ssh, "labctl-dockerd stop")
        assert ssh.run("labctl-dockerd status").exit_status == 3
        checked(ssh, "labctl-dockerd start", timeout=90)
        checked(ssh, "labctl-dockerd status")
        assert checked(ssh, "findmnt -n -o FSTYPE /var/lib/docker").strip() == "ext4"
    finally:
        ssh.close()


def test_up_again_is_idempotent_and_restarts_stopped_hosts(lab: Lab) -> None:
    before = {h.name: h.port for h in lab.state.hosts}
    ids = {s: lab.client.containers.get(lab.driver.container_name(s)).id for s in SUITES}
    keys = lab.state.known_hosts.read_text()
    lab.messages.clear()
    started = time.monotonic()
    again = lab.driver.up()
    took = time.monotonic() - started
    assert {h.name: h.port for h in again.hosts} == before
    assert lab.state.known_hosts.read_text() == keys
    assert not [m for _h, m in lab.messages if "building" in m]
    assert took < 30, took
    # a stopped host is started again (new port), keeps its container and its host key
    lab.client.containers.get(lab.driver.container_name("trixie")).stop(timeout=30)
    third = lab.driver.up()
    assert {s: lab.client.containers.get(lab.driver.container_name(s)).id for s in SUITES} == ids
    key_of = {ln.split()[0]: ln.split()[2] for ln in keys.splitlines()}
    new_key_of = {ln.split()[0]: ln.split()[2] for ln in third.known_hosts.read_text().splitlines()}
    assert sorted(key_of.values()) == sorted(new_key_of.values())
    lab.state = third
    ssh = _ssh(lab, "trixie")
    try:
        assert checked(ssh, "docker info --format '{{.Driver}}'").strip() == "overlay2"
    finally:
        ssh.close()


def test_down_leaves_nothing(lab: Lab) -> None:
    name = lab.state.lab
    report = lab.driver.down()
    assert isinstance(report, DownReport)
    assert report.problems == []
    assert sorted(report.removed["containers"]) == sorted(f"labctl-lab-{name}-{s}" for s in SUITES)
    assert report.removed["networks"] == [f"labctl-{name}"]
    client = lab.client
    assert client.containers.list(all=True, filters={"label": f"labctl.lab={name}"}) == []
    assert client.networks.list(filters={"label": f"labctl.lab={name}"}) == []
    assert client.networks.list(names=[f"labctl-{name}"]) == []
    leftovers = []
    for bf in Path("/sys/block").glob("loop*/loop/backing_file"):
        if f"labctl-disk-{name}-" in bf.read_text():
            leftovers.append(bf)
    assert leftovers == []
    assert lab.driver.lab_loops() == []
    # no build folder of this run, and none a killed build left (another live build is not ours)
    builds = Path(tempfile.gettempdir()).glob(f"{debootstrap.BUILD_DIR_PREFIX}*")
    assert [b for b in builds if debootstrap.build_dir_pid(b) in (None, os.getpid())] == []
    assert debootstrap.orphan_build_dirs() == []
    assert not lab.state.inventory.exists() and not lab.state.known_hosts.exists()
    assert lab.state.key_file.exists()
    # no process of the lab is left (inner dockerd, sshd run inside the removed containers)
    assert [s.state for s in lab.driver.status()] == ["missing"] * 3
    # down again is harmless
    assert lab.driver.down().problems == []
