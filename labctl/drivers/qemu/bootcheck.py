"""The boot check of a freshly built VM image: before an image goes into the cache it boots once,
with the lab's own boot code, to the point a lab waits for (SSH with the known host key,
labctl-vm-init done, the Docker engine answering, the cgroup version asked for), then stops.
The lab's own bound holds (``boot.READY_TIMEOUT``: 480 s under TCG, 180 s under KVM): a fresh
image is ready in 35-90 s under TCG here, and a loaded machine must not fail a good image.

A recipe that today's Debian mirror broke (a package that moved a file, a unit that no longer
starts) then fails the build with one line naming the suite and the console's last lines, and
the image is not cached. The check runs in a build folder of its own (``labctl-build-bootcheck-
*`` in the temp folder); its QEMU and its folder go on every path, Ctrl-C included. The console
log of a failed check is kept beside the build log.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from ... import debootstrap
from ...errors import LabError
from ...hosts import Progress
from ...paths import cache_dir
from ..base import DownReport, GiB, HostStatus, LabState
from . import images as vmimages
from .boot import QemuVms, Vm
from .spec import QemuHostSpec, QemuLabSpec
from .vm import Accel

CHECK_MEMORY = 1 * GiB
CHECK_DISK = 1 * GiB


class BootCheck(QemuVms):
    """One throwaway VM of a new image in a folder of its own. Not a lab (no lab.json, no
    inventory, no ``up``): ``run`` boots and waits, ``down`` stops the VM."""

    name = "qemu"
    spec: QemuLabSpec

    def __init__(self, folder: Path, suite: str, *, progress: Progress | None = None) -> None:
        host = QemuHostSpec(suite=suite, memory=CHECK_MEMORY, cpus=2, disk_size=CHECK_DISK)
        self.spec = QemuLabSpec(name="bootcheck", hosts=(host,))
        self._folder = folder
        self._progress = progress

    @property
    def directory(self) -> Path:
        return self._folder

    @classmethod
    def from_options(cls, *_a: object, **_k: object) -> BootCheck:
        raise NotImplementedError("a boot check is not a lab")

    def up(self) -> LabState:
        raise NotImplementedError("a boot check is not a lab")

    def status(self) -> list[HostStatus]:
        return []

    def down(self) -> DownReport:
        """Stop the check's QEMU (by pid file, then any QEMU pointing into the folder)."""
        report = DownReport()
        host = self.spec.hosts[0].name
        self._stop_vm(host, report)
        for pid in self.lab_processes():
            self._kill(pid, f"pid {pid}", report)
        return report

    def run(self, image: vmimages.VmImage, accel: Accel) -> Vm:
        """Boot ``image`` and wait until it is ready; LabError when it is not."""
        _key, public_key = self._make_directory()
        self.accel = accel
        vm = Vm(self.spec.hosts[0], self.vm_dir(self.spec.hosts[0].name), image=image)
        self._boot(vm, public_key)
        assert vm.port is not None and vm.host_key is not None
        self._write_known_hosts_entries([(vm.port, vm.host_key)])
        self._wait_ready(vm)
        return vm


def boot_check(
    image: vmimages.VmImage, accel: Accel, *, mirror: str, progress: Progress | None = None
) -> float:
    """Boot a new image once (see the module); its boot-to-ready seconds. A failure is a
    LabError naming the suite, what failed and the console's tail; nothing is left running."""
    say = progress or (lambda _h, _m: None)
    suite = image.suite
    say(suite, f"boot check: booting the new image once ({accel.name})")
    folder = debootstrap.new_build_dir("bootcheck")
    checker = BootCheck(folder, suite, progress=progress)
    try:
        vm = checker.run(image, accel)
    except LabError as exc:
        kept = cache_dir() / "logs" / f"vm-bootcheck-{suite}-{image.recipe}.console.log"
        with contextlib.suppress(OSError):
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(checker.vm_dir(suite) / "console.log", kept)
        raise LabError(
            f"the VM image built from {mirror} failed its boot check: {exc.message}",
            host=suite,
            hint=f"it was not cached; console log: {kept}",
        ) from exc
    finally:
        report = checker.down()
        for problem in report.problems:
            say(suite, f"boot check: {problem}")
        debootstrap.remove_tree(folder)
    seconds = vm.boot_to_docker or 0.0
    say(suite, f"boot check passed: ready after {seconds:.1f} s ({vm.kernel}, {vm.docker_version})")
    return seconds
