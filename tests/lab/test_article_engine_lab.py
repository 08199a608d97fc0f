"""The article's engine for real: Docker 1.5.0 built from its source, installed by the
``docker_engine`` role on two bullseye VMs (cgroup v1, devicemapper loop-lvm), one started the
CentOS 6.6 way (SysV script) and one with Docker 1.5.0's own systemd unit (CentOS 7.0), then
provisioned, probed and compared with the study through ``labctl run``.

The storage answers must be the article's: the 6.6-like host finds the container's files in its
own tree and can read and change them; the 7.0-like host does not (the daemon mounts them in a
private mount namespace) and reaches them only through /proc/<dockerd>/root. A bounded disk
check and memory-limited run on both. The VMs run under TCG here (~8 minutes for all of it).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.drivers.base import GiB, LabState
from labctl.drivers.qemu import QemuHostSpec, QemuLab, QemuLabSpec

pytestmark = [pytest.mark.lab, pytest.mark.engine, pytest.mark.timeout(2700)]

LABCTL = str(Path(sys.executable).with_name("labctl"))
HOSTS = {"c66": "sysvinit", "c70": "systemd"}


def _say(host: str, message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {host} {message}", file=sys.stderr)


@pytest.fixture(scope="module")
def article_lab(
    engine_source: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabState]:
    from labctl.engines import build_engine

    if os.geteuid() != 0:
        pytest.skip("the qemu lab needs root (debootstrap)")
    for tool in ("qemu-system-x86_64", "qemu-img", "debootstrap"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (bash scripts/setup.sh deps)")
    started = time.monotonic()
    build_engine("1.5.0", source=str(engine_source), progress=_say)
    _say("*", f"engine ready in {time.monotonic() - started:.0f} s")
    home = tmp_path_factory.mktemp("labctl-home-article")
    hosts = tuple(
        QemuHostSpec(suite="bullseye", name=name, cgroup="v1", engine="1.5.0", init=init,
                     storage_driver="devicemapper", disk_size=2 * GiB)
        for name, init in HOSTS.items()
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABCTL_HOME", str(home))
        driver = QemuLab(QemuLabSpec(name=f"a{os.getpid()}", hosts=hosts), progress=_say)
        try:
            yield driver.up()
        finally:
            report = driver.down()
            assert report.ok, report.problems
            assert driver.lab_processes() == [], "a QEMU process of the test lab is left"


def _matrix(run_dir: Path) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    with (run_dir / "matrix.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = {r["metric"]: r for r in reader}
        columns = {c.split(" ")[0]: c for c in reader.fieldnames or [] if c != "metric"}
    return rows, columns


def test_run_reproduces_the_storage_findings_with_1_5_0(
    article_lab: LabState, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    started = time.monotonic()
    proc = subprocess.run(
        [LABCTL, "run", "-i", str(article_lab.inventory), "--results", str(results),
         "--experiments", "storage-location,disk,memory-limited", "--set", "disk_cap_bytes=160M",
         "--timeout", "900"],
        capture_output=True, text=True, timeout=1800, env=os.environ.copy(),
    )  # fmt: skip
    _say("*", f"labctl run took {time.monotonic() - started:.0f} s")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    (run_dir,) = [p for p in results.iterdir() if (p / "run.json").exists()]
    rows, col = _matrix(run_dir)

    def cell(metric: str, host: str) -> str:
        return rows[metric][col[host]]

    for host in HOSTS:
        assert cell("docker.server_version", host) == "1.5.0"
        assert cell("docker.storage_driver", host) == "devicemapper"
        assert "1.5.0" in col[host] and "devicemapper" in col[host]
        assert cell("storage-location.container_root_is_block_device", host) == "true"
        for exp in ("disk", "memory-limited"):
            assert cell(f"{exp}.status", host) == "ok", cell(f"{exp}.verdict", host)
        assert cell("memory-limited.verdict", host).startswith("contained"), cell(
            "memory-limited.verdict", host
        )
        assert int(float(cell("disk.written_bytes", host))) > 0
    # CentOS 6.6: the daemon shares init's mount namespace; the files are in the host's tree
    assert cell("docker.mount_namespace", "c66") == "host"
    assert cell("storage-location.in_host_tree", "c66") == "true"
    assert cell("storage-location.host_can_read", "c66") == "true"
    assert cell("storage-location.host_can_write", "c66") == "true"
    assert "CentOS 6.6" in cell("storage-location.verdict", "c66")
    # CentOS 7.0: MountFlags=slave; not in the host's tree, only through the daemon's namespace
    assert cell("docker.mount_namespace", "c70") == "private"
    assert cell("storage-location.in_host_tree", "c70") == "false"
    assert cell("storage-location.host_can_read", "c70") == "false"
    assert cell("storage-location.host_can_write", "c70") == "false"
    assert cell("storage-location.container_root_mounted_in_host_ns", "c70") == "false"
    assert cell("storage-location.host_can_read_via_daemon_ns", "c70") == "true"
    assert "CentOS 7.0" in cell("storage-location.verdict", "c70")
    for host, verdict in ((h, cell("storage-location.verdict", h)) for h in HOSTS):
        _say(host, f"storage-location: {verdict}")

    cmp = subprocess.run(
        [LABCTL, "compare", str(run_dir), "--baseline", "article", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert cmp.returncode == 0, cmp.stderr
    paired = {s["system"]: (s.get("host") or "") for s in json.loads(cmp.stdout)["systems"]}
    assert paired["centos66"] == "c66" and paired["centos70"] == "c70", paired
