"""Bring your own image, for real: a Debian bookworm cloud image WITH cloud-init (built from the
mirror, cached by recipe: the vendors' images cannot be downloaded here) boots through exactly
the user's path: ``labctl lab up --driver qemu --host image:path=FILE,...`` (overlay, NoCloud
seed, the controller's host key, SSH), then ``labctl run --lab NAME`` (provisioning finds the
image's docker.io, configures and starts it with the roles, the probe runs storage-location),
then ``labctl lab down``.

The bad images, one clear line each and nothing left running: a wrong path, a file that is not
a disk image, the same image with cloud-init disabled (/etc/cloud/cloud-init.disabled) and with
a cloud-init that looks only for another cloud's seed (datasource_list: [ConfigDrive, None]).
The two broken images are made from the good one with ``debugfs`` on a raw copy (no mount).

Needs root, qemu-system-x86 + qemu-utils, debootstrap, genisoimage (or xorriso) and the Debian
mirror. VMs: 2 vCPUs, 1 GiB, under TCG here.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from labctl.debootstrap import detect_mirror
from labctl.hosts import HostRecord
from labctl.inventory import load_inventory
from tests import cloudbuild
from tests.helpers import labctl, only_run, qemu_processes, remote

# the image build (~5 min, once per recipe) and three boots under TCG
pytestmark = [pytest.mark.lab, pytest.mark.timeout(2700)]

BAD_BOOT_TIMEOUT = 300  # seconds: the bound of a broken image's boot


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr)


@dataclass
class Byo:
    home: Path
    image: Path
    build_seconds: float


@pytest.fixture(scope="module")
def byo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Byo]:
    if os.geteuid() != 0:
        pytest.skip("building the cloud image needs root (debootstrap)")
    for tool in ("qemu-system-x86_64", "qemu-img", "debootstrap", "debugfs"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (bash scripts/setup.sh deps)")
    if shutil.which("genisoimage") is None and shutil.which("xorriso") is None:
        pytest.skip("genisoimage is not installed (bash scripts/setup.sh deps)")
    started = time.monotonic()
    # docker.io comes in the image, as in a cloud's ready-made Docker image: apt under TCG
    # (refresh 105 s, install 324 s in CI) would be most of the suite's slowest test, and the
    # roles' installs are covered elsewhere (distro packages on container hosts in
    # test_provision_lab, the static method inside VMs in test_article_engine_lab)
    # (apparmor: a Recommends of docker.io that apt would add; without apparmor_parser, an
    # AppArmor kernel's dockerd cannot load docker-default and refuses to start containers)
    recipe = cloudbuild.cloud_recipe_for("bookworm", extra_packages=("docker.io", "apparmor"))
    image = cloudbuild.build_cloud_image(recipe, detect_mirror(), progress=lambda h, m: _say(m))
    seconds = time.monotonic() - started
    _say(f"cloud image {image} ready in {seconds:.0f} s")
    home = tmp_path_factory.mktemp("labctl-home-byo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABCTL_HOME", str(home))
        yield Byo(home, image, seconds)
    assert qemu_processes(str(home)) == [], "a QEMU process of a test lab is left"


def _lab_up(lab: str, host: str) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    proc = labctl("lab", "up", "--driver", "qemu", "--name", lab, "--host", host, timeout=1500)
    _say(f"lab up {lab}: exit {proc.returncode} in {time.monotonic() - started:.0f} s")
    return proc


def _lab_down(lab: str) -> None:
    proc = labctl("lab", "down", "--name", lab, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip().startswith("error")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def _nothing_left(byo: Byo, lab: str) -> None:
    assert qemu_processes(f"{byo.home}/labs/{lab}/") == []
    vms = byo.home / "labs" / lab / "vms"
    assert not vms.exists() or not any(vms.iterdir()), list(vms.iterdir())


def test_cloud_image_is_provisioned_and_probed(byo: Byo, tmp_path: Path) -> None:
    lab = f"byo{os.getpid()}"
    before = byo.image.stat()
    host = f"image:path={byo.image},name=deb12,memory=1GiB,cgroup=v2"
    try:
        proc = _lab_up(lab, host)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        inventory = byo.home / "labs" / lab / "inventory.yml"
        (rec,) = load_inventory(inventory).hosts
        assert rec.name == "deb12" and rec.address == "127.0.0.1" and rec.user == "root"
        assert rec.labels["image"] == byo.image.name and rec.labels["kernel_cgroup"] == "v2"
        assert rec.vars["labctl_image_path"] == str(byo.image)
        # the host key is the one made on the controller (known_hosts written before the boot)
        known = (byo.home / "labs" / lab / "known_hosts").read_text().split()
        assert remote(rec, "hostname").strip() == "deb12"
        served = remote(rec, "cat /etc/ssh/ssh_host_*_key.pub").split()
        assert served[:2] == known[1:3] and len(served) == 3  # ed25519 only, the seed's
        assert remote(rec, "ls /etc/ssh/ | grep -c '^ssh_host_.*_key$'").strip() == "1"
        up_seconds = remote(rec, "cat /proc/uptime").split()[0]
        _say(f"guest uptime at ready: {up_seconds} s")

        results = tmp_path / "results"
        started = time.monotonic()
        proc = labctl("run", "--lab", lab, "--experiments", "storage-location",
                      "--results", str(results), timeout=1500)  # fmt: skip
        _say(f"labctl run: exit {proc.returncode} in {time.monotonic() - started:.0f} s")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        with (only_run(results) / "matrix.csv").open(newline="") as fh:
            reader = csv.DictReader(fh)
            rows = {r["metric"]: r for r in reader}
            columns = list(reader.fieldnames or [])
        col = next(c for c in columns if c.split(" ")[0] == "deb12")
        assert rows["status"][col] == "ok"
        assert rows["lab.driver"][col] == "qemu"
        assert rows["storage-location.status"][col] == "ok", rows["storage-location.verdict"]
        assert rows["storage-location.host_path"][col].startswith("/var/lib/docker/")
        assert rows["host.kernel"][col].endswith("-cloud-amd64")
    finally:
        _lab_down(lab)
    _nothing_left(byo, lab)
    after = byo.image.stat()  # the user's image is only ever a backing file
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_wrong_path_and_non_image_are_one_line_each(byo: Byo, tmp_path: Path) -> None:
    lab = f"byobad{os.getpid()}"
    line = _one_error_line(_lab_up(lab, f"image:path={tmp_path}/CentOS-7.qcow2,name=c7"))
    assert "no image file at" in line and "CentOS-7.qcow2" in line
    text = tmp_path / "notes.qcow2"
    text.write_text("this is not a disk image\n" * 50)
    line = _one_error_line(_lab_up(lab, f"image:path={text},name=c7"))
    assert "not a disk image" in line and "c7" in line
    _lab_down(lab)
    _nothing_left(byo, lab)


def _broken_copy(byo: Byo, tmp_path: Path, name: str, path: str, content: str) -> Path:
    """The good image as a raw copy with one file written into its root filesystem."""
    raw = tmp_path / f"{name}.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(byo.image), str(raw)], check=True)
    src = tmp_path / f"{name}.content"
    src.write_text(content)
    fs = f"{raw}?offset={cloudbuild.PART_START}"
    parent = os.path.dirname(path)
    subprocess.run(["debugfs", "-w", "-R", f"mkdir {parent}", fs], capture_output=True, check=False)
    subprocess.run(["debugfs", "-w", "-R", f"write {src} {path}", fs], capture_output=True,
                   check=True)  # fmt: skip
    listing = subprocess.run(["debugfs", "-R", f"ls {parent}", fs], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    assert os.path.basename(path) in listing, listing
    return raw


@pytest.mark.parametrize(
    ("case", "path", "content", "expected"),
    [
        ("nocloudinit", "/etc/cloud/cloud-init.disabled", "",
         "lacks cloud-init (NoCloud)"),
        ("noseed", "/etc/cloud/cloud.cfg.d/99-noseed.cfg",
         "datasource_list: [ ConfigDrive, None ]\n", "the seed was not taken"),
    ],
)  # fmt: skip
def test_broken_image_is_one_line_and_stopped(
    byo: Byo, tmp_path: Path, case: str, path: str, content: str, expected: str
) -> None:
    image = _broken_copy(byo, tmp_path, case, path, content)
    lab = f"byo{case}{os.getpid()}"
    host: HostRecord | None = None
    try:
        proc = _lab_up(lab, f"image:path={image},name={case},boot_timeout={BAD_BOOT_TIMEOUT}")
        line = _one_error_line(proc)
        assert expected in line and case in line, line
        _nothing_left(byo, lab)  # `lab up` stopped the VM it started
    finally:
        _lab_down(lab)
    assert host is None
    _nothing_left(byo, lab)
