"""Every suite's VM as today's Debian mirror makes it: bullseye, bookworm and trixie booted to SSH
in one qemu lab (under TCG one after another, ~30-40 s each with cached images; a missing image
is built first, boot-checked, with a manifest beside it), and the boot check of a broken image.

Needs root, qemu-system-x86 + qemu-utils and debootstrap; images are shared with the user's labs
(LABCTL_CACHE). The lab lives in its own LABCTL_HOME and is always taken down.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.drivers.base import GiB
from labctl.drivers.qemu import QemuHostSpec, QemuLab, QemuLabSpec
from labctl.drivers.qemu import images as vmimages
from labctl.drivers.qemu import manifest as vmmanifest
from labctl.drivers.qemu.bootcheck import boot_check
from labctl.errors import LabError
from tests.helpers import UpLab, host_named, qemu_lab_up, qemu_processes, remote

#: a cold cache builds and boot-checks three images first (5-7 min each on a loaded machine)
pytestmark = [pytest.mark.lab, pytest.mark.timeout(2700)]

SUITES = {"bullseye": ("11", "5.10."), "bookworm": ("12", "6.1."), "trixie": ("13", "6.12.")}
MIRROR_SAID = ("the image matches", "has moved on", "could not check", "no package manifest")


@pytest.fixture(scope="module")
def suites_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpLab[QemuLab]]:
    hosts = tuple(QemuHostSpec(suite=s, memory=1 * GiB, cpus=2, disk_size=1 * GiB) for s in SUITES)
    home = tmp_path_factory.mktemp("labctl-home-suites")
    with qemu_lab_up(home, QemuLabSpec(name=f"s{os.getpid()}", hosts=hosts)) as up:
        yield up


def test_every_suite_boots_to_ssh_on_its_own_kernel(suites_lab: UpLab[QemuLab]) -> None:
    for suite, (release, kernel) in SUITES.items():
        host = host_named(suites_lab.state, suite)
        facts = remote(host, ". /etc/os-release; echo $VERSION_CODENAME; uname -r; "
                       "cut -d. -f1 /etc/debian_version").split()  # fmt: skip
        assert facts[0] == suite and facts[1].startswith(kernel), facts
        assert facts[1].endswith("-cloud-amd64") and facts[2] == release, facts
        console = suites_lab.driver.vm_dir(suite) / "console.log"
        assert "Ordering cycle" not in console.read_text(errors="replace"), suite
    print(f"three suites up in {suites_lab.up_seconds:.0f} s", flush=True)


def test_each_image_was_boot_checked_or_compared_with_the_mirror(
    suites_lab: UpLab[QemuLab],
) -> None:
    """A build boot-checks its image and writes its manifest; a cached image gets one line
    about the mirror (never an error, even when the mirror is unreachable)."""
    for suite in SUITES:
        said = [m for h, m in suites_lab.messages if h == suite]
        img = vmimages.load_image(vmimages.vm_recipe_for(suite))
        assert img is not None
        if any(m.startswith("building VM image") for m in said):
            assert any(m.startswith("boot check passed") for m in said), said
            manifest = vmmanifest.read_manifest(img.directory)
            assert manifest is not None and manifest["suite"] == suite
            assert manifest["release"]["Codename"] == suite
            assert {"openssh-server", "systemd"} <= set(manifest["packages"])
        else:
            assert sum(any(k in m for k in MIRROR_SAID) for m in said) == 1, said


def test_a_broken_image_fails_its_boot_check_in_one_line_and_leaves_nothing(
    suites_lab: UpLab[QemuLab], tmp_path: Path
) -> None:
    """bookworm's disk and kernel with an initrd that is no initramfs: the kernel panics, the
    check says so with the console's tail, stops QEMU and removes its folder."""
    good = vmimages.load_image(vmimages.vm_recipe_for("bookworm"))
    assert good is not None and suites_lab.driver.accel is not None
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("disk.raw", "vmlinuz"):
        (broken / name).symlink_to(good.directory / name)
    (broken / "initrd.img").write_bytes(b"not an initramfs\n" * 64)
    image = vmimages.VmImage("bookworm", "broken000000", broken, good.kernel_version)
    before = set(Path(tempfile.gettempdir()).glob("labctl-build-bootcheck-*"))
    with pytest.raises(LabError) as info:
        boot_check(image, suites_lab.driver.accel, mirror="http://mirror.test/debian")
    line = info.value.line()
    assert line.startswith("bookworm: the VM image built from http://mirror.test/debian failed "
                           "its boot check: "), line  # fmt: skip
    assert "console: " in line and "not cached" in line and "\n" not in line
    assert qemu_processes("labctl-build-bootcheck-") == []
    assert set(Path(tempfile.gettempdir()).glob("labctl-build-bootcheck-*")) == before
    assert not (broken / "image.json").exists()
    assert vmimages.load_image(vmimages.vm_recipe_for("bookworm")) == good  # base untouched
