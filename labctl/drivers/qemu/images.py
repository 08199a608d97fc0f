"""VM images for the qemu driver: one bootable Debian disk per suite, built locally and cached.

Each suite's image is a ``debootstrap --variant=minbase`` tree with the suite's cloud kernel, an
initramfs-tools initrd, systemd, sshd, Docker, python3 and the files in ``image_files/``, written
into a raw ext4 disk with ``mkfs.ext4 -d`` (no loop mount, no root filesystem of the controller
involved). The kernel is copied out next to the disk with labctl's own small initramfs
(``initramfs.py``): QEMU boots them directly (``-kernel``/``-initrd``), so the kernel command line
(cgroup v1 or v2) is chosen per boot. sshd starts early in the boot (``labctl-vm-ssh.service``
hands it the host key and configures eth0), before udev, AppArmor, the data disk and Docker.

Images live in ``cache_dir()/vm/<suite>-<recipe hash 12>/`` (``disk.raw``, ``vmlinuz``,
``initrd.img``, ``manifest.json`` = what it was built from (``manifest.py``), ``image.json``
written last = complete, once the new image passed its boot check, ``bootcheck.py``). The hash
covers the suite, the package list, the baked-in files and the build steps, not the mirror;
a recipe change means a rebuild (and `labctl lab up --refresh` one from today's mirror).
debootstrap's package cache is the one the docker driver uses (``cache_dir()/debootstrap/<suite>``).
Runs never write to an image: each VM boots from its own qcow2 overlay.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ... import debootstrap
from ...errors import ConfigError, LabError
from ...hosts import Progress
from ...locks import file_lock
from ...paths import cache_dir
from . import initramfs as vminitramfs
from . import manifest as vmmanifest

#: bump when the build steps change in a way the package list and files do not show
RECIPE_VERSION = 2
ROOT_DISK_SIZE = 3 << 30  # sparse; the root filesystem uses ~700 MB of it

VM_PACKAGES: tuple[str, ...] = (
    "linux-image-cloud-amd64",
    "initramfs-tools",
    "systemd-sysv",
    "udev",
    "kmod",
    "apparmor",  # without it every `docker run` fails on these kernels
    "openssh-server",
    "docker.io",
    "python3",
    "iproute2",
    "procps",
    "e2fsprogs",
    "dmsetup",  # storage-host-mount makes a thin device by hand (the article's CentOS 7.0 test)
    "xfsprogs",
    "util-linux",
    "ca-certificates",
    "iptables",
)
#: trixie's docker.io only recommends the client
VM_EXTRA_PACKAGES: dict[str, tuple[str, ...]] = {
    "bullseye": (),
    "bookworm": (),
    "trixie": ("docker-cli",),
}
SUITES: tuple[str, ...] = tuple(VM_EXTRA_PACKAGES)

#: files of image_files/ baked into the image: name -> (path in the image, mode)
VM_IMAGE_FILES: dict[str, tuple[str, int]] = {
    "labctl-vm-init": ("/usr/local/sbin/labctl-vm-init", 0o755),
    "labctl-vm-init.service": ("/etc/systemd/system/labctl-vm-init.service", 0o644),
    "labctl-vm-ssh.service": ("/etc/systemd/system/labctl-vm-ssh.service", 0o644),
    "ssh.service": ("/etc/systemd/system/ssh.service", 0o644),
    "docker-labctl.conf": ("/etc/systemd/system/docker.service.d/labctl.conf", 0o644),
    "udev-trigger-labctl.conf": (
        "/etc/systemd/system/systemd-udev-trigger.service.d/labctl.conf",
        0o644,
    ),
    "sshd-labctl.conf": ("/etc/ssh/sshd_config.d/labctl.conf", 0o644),
    "labctl-initramfs-init": ("/usr/local/share/labctl/initramfs-init", 0o755),
}
#: units enabled / masked in the image (part of the recipe)
#: (eth0 is configured by labctl-vm-ssh.service early in the boot, not by systemd-networkd)
ENABLE_UNITS: tuple[str, ...] = ("labctl-vm-init.service", "labctl-vm-ssh.service")
#: the distribution's engine is started by labctl-vm-init, and only on hosts that keep it: a host
#: that runs an engine built from source (Docker 1.5.0) must not have 20.10 start on its disk first
DISABLE_UNITS: tuple[str, ...] = ("docker.service", "docker.socket", "containerd.service")
MASK_UNITS: tuple[str, ...] = (
    "systemd-networkd-wait-online.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "man-db.timer",
    "serial-getty@ttyS0.service",
    "getty-static.service",
    "dpkg-db-backup.timer",
    # loads the distribution's profiles (lsb_release, nvidia_modprobe: nothing a lab host runs),
    # 6-16 s of CPU under TCG early in the boot; dockerd loads its own docker-default profile
    # with apparmor_parser, which is what `docker run` needs
    "apparmor.service",
    # early units that start a program each (modprobe, mount) beside labctl-vm-ssh.service and
    # sshd's first login, for nothing a lab host uses: configfs, EFI pstore, FUSE, debugfs,
    # tracefs, hugetlbfs, binfmt_misc; dm_mod and loop are only wanted by systemd-repart, which
    # never runs here (labctl-vm-init loads dm_thin_pool and loop for devicemapper itself)
    "modprobe@configfs.service",
    "modprobe@dm_mod.service",
    "modprobe@efi_pstore.service",
    "modprobe@fuse.service",
    "modprobe@loop.service",
    "sys-kernel-config.mount",
    "sys-fs-fuse-connections.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "dev-hugepages.mount",
    "proc-sys-fs-binfmt_misc.automount",
    "systemd-binfmt.service",
    # no display (-nodefaults): nobody logs in on tty1
    "getty@tty1.service",
    # trixie's openssh-server (1:10.0p1-7+deb13u4 here) ships it, Before=ssh.service with the
    # default dependencies (After=sysinit.target): with AFTER_SSH_UNITS that is an ordering cycle
    # systemd breaks at random, once by dropping ssh.service (found by the boot check). The
    # controller hands each VM its host key: no ssh-keygen -A at first boot
    "sshd-keygen.service",
)
#: early units that wait until sshd has started (a drop-in ``After=ssh.service`` each), so they
#: do not compete with labctl-vm-ssh.service and sshd for the two emulated CPUs; nothing on
#: sshd's way needs them (root is mounted rw by the initramfs, the kernel's random pool is ready,
#: the sshd user is in the image, no modules-load.d or sysctl.d setting concerns sshd). They are
#: one-shot chores of the boot and run at nice 19, so the first SSH login, which comes while
#: they run, gets the CPUs first (no process of the lab's work descends from them)
AFTER_SSH_UNITS: tuple[str, ...] = (
    "systemd-remount-fs.service",
    "systemd-sysctl.service",
    "systemd-modules-load.service",
    "systemd-random-seed.service",
    "systemd-sysusers.service",
    "systemd-journal-flush.service",
)
AFTER_SSH_DROPIN = (
    "# labctl VM lab host: started once sshd runs, at low CPU priority (see images.py)\n"
    "[Unit]\nAfter=ssh.service\n[Service]\nNice=19\n"
)
#: systemd generators a labctl VM has no use for (no GPT auto-mounts, crypt/verity/integrity
#: volumes, hibernation, boot counting, offline updates, gettys, /etc/rc.local, the kernel command
#: line's systemd.run=/systemd.mask=/debug shell): each is a program started before the first
#: unit, seconds under TCG; masked by a /dev/null link in /etc/systemd/system-generators.
#: Kept: fstab (the root entry) and sysv (init scripts, as 2015's engines install them)
MASK_GENERATORS: tuple[str, ...] = (
    "systemd-gpt-auto-generator",
    "systemd-cryptsetup-generator",
    "systemd-veritysetup-generator",
    "systemd-integritysetup-generator",
    "systemd-hibernate-resume-generator",
    "systemd-bless-boot-generator",
    "systemd-system-update-generator",
    "systemd-getty-generator",
    "systemd-rc-local-generator",
    "systemd-run-generator",
    "systemd-debug-generator",
)
#: the initrd only needs the root disk's drivers (ext4 is built in): a small initrd unpacks and
#: boots seconds faster under TCG than initramfs-tools' default MODULES=most
INITRAMFS_CONF = "MODULES=list\nCOMPRESS=gzip\n"
INITRAMFS_MODULES: tuple[str, ...] = ("virtio_pci", "virtio_blk", "ext4")

BUILD_TIMEOUT = 1800.0


def image_files_dir() -> Path:
    return Path(__file__).resolve().parent / "image_files"


def _read_image_files() -> dict[str, bytes]:
    return debootstrap.read_image_files(image_files_dir(), VM_IMAGE_FILES, what="VM image")


@dataclass(frozen=True)
class VmRecipe(debootstrap.ImageRecipe):
    """Everything that defines one suite's VM image (the mirror does not)."""

    version: int = RECIPE_VERSION
    root_size: int = ROOT_DISK_SIZE

    def settings(self) -> dict[str, Any]:
        return {
            **self.common_settings(self.version, "qemu-vm"),
            "root_size": self.root_size,
            "enable": list(ENABLE_UNITS),
            "disable": list(DISABLE_UNITS),
            "mask": list(MASK_UNITS),
            "mask_generators": list(MASK_GENERATORS),
            "after_ssh": [AFTER_SSH_DROPIN, list(AFTER_SSH_UNITS)],
            "initramfs": [INITRAMFS_CONF, list(INITRAMFS_MODULES)],
            "boot_initramfs": [list(vminitramfs.BOOT_MODULES), list(vminitramfs.KLIBC_TOOLS)],
            "files": {k: VM_IMAGE_FILES.get(k, ("", 0)) for k in sorted(self.files)},
        }

    @property
    def directory(self) -> Path:
        return vm_cache_dir() / f"{self.suite}-{self.short_hash}"


def vm_recipe_for(suite: str, *, files: Mapping[str, bytes] | None = None) -> VmRecipe:
    if suite not in VM_EXTRA_PACKAGES:
        raise ConfigError(f"unknown suite {suite!r}", hint=f"choose from {', '.join(SUITES)}")
    return VmRecipe(
        suite=suite,
        packages=VM_PACKAGES + VM_EXTRA_PACKAGES[suite],
        files=dict(files or _read_image_files()),
    )


@dataclass(frozen=True)
class VmImage:
    """A built image: the raw disk and the kernel and initrd to boot it with."""

    suite: str
    recipe: str
    directory: Path
    kernel_version: str
    build_seconds: float | None = None
    #: built by this process (just boot-checked), not taken from the cache
    built_now: bool = False

    @property
    def disk(self) -> Path:
        return self.directory / "disk.raw"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"


def vm_cache_dir() -> Path:
    return cache_dir() / "vm"


def load_image(recipe: VmRecipe) -> VmImage | None:
    """The cached image of ``recipe``, or None when it is missing or incomplete."""
    d = recipe.directory
    try:
        meta = json.loads((d / "image.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("recipe") != recipe.digest:
        return None
    img = VmImage(
        suite=recipe.suite,
        recipe=recipe.short_hash,
        directory=d,
        kernel_version=str(meta.get("kernel_version", "")),
        build_seconds=meta.get("build_seconds"),
    )
    if not (img.disk.is_file() and img.kernel.is_file() and img.initrd.is_file()):
        return None
    return img


def check_vm_build_prerequisites() -> None:
    debootstrap.check_build_prerequisites()
    if shutil.which("mkfs.ext4") is None:
        raise LabError(
            "mkfs.ext4 is not installed; it writes the VM disk images",
            hint="install e2fsprogs (`apt-get install e2fsprogs`)",
        )


def _mke2fs_version() -> tuple[int, ...]:
    try:
        out = subprocess.run(["mke2fs", "-V"], capture_output=True, text=True, check=False)
    except OSError:
        return ()
    m = re.search(r"mke2fs (\d+)\.(\d+)(?:\.(\d+))?", out.stdout + out.stderr)
    return tuple(int(x) for x in m.groups() if x is not None) if m else ()


def mkfs_command(root: Path, disk: Path, size: int, version: tuple[int, ...]) -> list[str]:
    """``mkfs.ext4 -d`` writing ``root`` into ``disk``: features every suite's kernel and
    e2fsprogs read (the controller's mke2fs may default to newer ones, e.g. orphan_file in
    1.47, which bullseye's fsck refuses)."""
    cmd = ["mkfs.ext4", "-q", "-F", "-L", "labctl-root", "-m", "1", "-d", str(root)]
    if version >= (1, 47):
        cmd += ["-O", "^orphan_file,^metadata_csum_seed"]
    cmd += [str(disk), f"{size // 1024}k"]
    return cmd


def _run(cmd: list[str], log: Any, *, what: str, suite: str, log_path: Path) -> None:
    debootstrap.run_logged(
        cmd, log, timeout=600.0, what=what, image=f"{suite} VM image", log_path=log_path, host=suite
    )


def _kernel_files(root: Path) -> tuple[str, Path, Path | None]:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise LabError("no kernel in /boot of the VM image tree (linux-image not installed?)")
    kernel = kernels[-1]
    version = kernel.name.removeprefix("vmlinuz-")
    initrd = root / "boot" / f"initrd.img-{version}"
    return version, kernel, initrd if initrd.is_file() else None


def customize_tree(root: Path, recipe: VmRecipe, mirror: str, log: Any, log_path: Path) -> str:
    """Turn a debootstrap tree into a bootable VM tree; returns the kernel version."""
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()  # the controller hands each VM its own key at boot
    # OpenSSH 9.8+ (trixie) penalizes sources of unauthenticated connections; every controller
    # connection comes from QEMU's one user-mode address, so one bad client would lock all out
    if b"PerSourcePenalties" in (root / "usr" / "sbin" / "sshd").read_bytes():
        (root / "etc" / "ssh" / "sshd_config.d").mkdir(parents=True, exist_ok=True)
        (root / "etc" / "ssh" / "sshd_config.d" / "labctl-penalties.conf").write_text(
            "PerSourcePenalties no\n"
        )
    (root / "etc" / "apt" / "sources.list").write_text(f"deb {mirror} {recipe.suite} main\n")
    debootstrap.install_files(root, recipe.files, VM_IMAGE_FILES)
    (root / "etc" / "fstab").write_text(
        "# labctl VM: the root disk (no fsck: the disk is a throwaway overlay)\n"
        "LABEL=labctl-root / ext4 rw,errors=remount-ro 0 0\n"
    )
    (root / "etc" / "hostname").write_text("labctl-vm\n")
    resolv = root / "etc" / "resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("nameserver 10.0.2.3\n")
    # a machine-id made at first boot (empty file = systemd makes a transient one per boot)
    (root / "etc" / "machine-id").write_text("")
    conf = root / "etc" / "initramfs-tools"
    (conf / "conf.d").mkdir(parents=True, exist_ok=True)
    (conf / "conf.d" / "labctl.conf").write_text(INITRAMFS_CONF)
    (conf / "modules").write_text("".join(f"{m}\n" for m in INITRAMFS_MODULES))
    version, _kernel, initrd = _kernel_files(root)
    _run(
        ["chroot", str(root), "update-initramfs", "-u" if initrd else "-c", "-k", version],
        log, what="update-initramfs", suite=recipe.suite, log_path=log_path,
    )  # fmt: skip
    _run(
        ["chroot", str(root), "systemctl", "enable", *ENABLE_UNITS],
        log, what="systemctl enable", suite=recipe.suite, log_path=log_path,
    )  # fmt: skip
    _run(
        ["chroot", str(root), "systemctl", "disable", *DISABLE_UNITS],
        log, what="systemctl disable", suite=recipe.suite, log_path=log_path,
    )  # fmt: skip
    for unit in AFTER_SSH_UNITS:
        dropin = root / "etc/systemd/system" / f"{unit}.d" / "labctl-after-ssh.conf"
        dropin.parent.mkdir(parents=True, exist_ok=True)
        dropin.write_text(AFTER_SSH_DROPIN)
    masks = [root / "etc/systemd/system" / unit for unit in MASK_UNITS]
    masks += [root / "etc/systemd/system-generators" / gen for gen in MASK_GENERATORS]
    for link in masks:
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")
    info = {
        "suite": recipe.suite,
        "recipe": recipe.digest,
        "packages": list(recipe.packages),
        "mirror": mirror,
        "kernel_version": version,
    }
    debootstrap.finish_tree(root, info, debootstrap.APT_LEFTOVERS)
    shutil.rmtree(root / "debootstrap", ignore_errors=True)
    return version


#: what a build calls with the new image (in its build folder) before it goes into the cache:
#: a LabError stops the build and the image is not cached (see ``bootcheck.py``)
ImageCheck = Callable[[VmImage], None]


def _write_boot_files(root: Path, out: Path, recipe: VmRecipe, version: str, say: Progress) -> str:
    """The kernel and the initrd QEMU boots, copied out of the tree into ``out``; which
    initramfs it is ("labctl", or "initramfs-tools" where the tree lacks a klibc tool)."""
    _version, kernel, initrd = _kernel_files(root)
    assert initrd is not None
    shutil.copyfile(kernel, out / "vmlinuz")
    # QEMU boots labctl's small initramfs (initramfs-tools' one stays in /boot),
    # or initramfs-tools' one where the tree lacks a klibc tool (bullseye: insmod)
    try:
        (out / "initrd.img").write_bytes(
            vminitramfs.build_initramfs(root, version, recipe.files["labctl-initramfs-init"])
        )
    except vminitramfs.Unsupported as exc:
        say(recipe.suite, f"note: {exc.message}; booting initramfs-tools' initrd")
        shutil.copyfile(initrd, out / "initrd.img")
        return "initramfs-tools"
    return "labctl"


def build_vm_image(
    recipe: VmRecipe, mirror: str, *, progress: Progress | None = None,
    check: ImageCheck | None = None, refresh: bool = False,
) -> VmImage:  # fmt: skip
    """Build one suite's VM image into the cache (under a lock); the temp tree always goes.
    ``check`` sees the new image before it is cached; ``refresh``: build even when cached."""
    say = progress or (lambda _h, _m: None)
    with file_lock(vm_cache_dir() / f".lock-{recipe.suite}"):
        found = None if refresh else load_image(recipe)
        if found is not None:
            return found
        check_vm_build_prerequisites()
        cache = debootstrap.debootstrap_cache(recipe.suite)
        cache.mkdir(parents=True, exist_ok=True)
        log_path = cache_dir() / "logs" / f"vm-build-{recipe.suite}-{recipe.short_hash}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = debootstrap.new_build_dir(f"vm-{recipe.suite}")
        root = tmp / "root"
        out = vm_cache_dir() / f".{recipe.suite}-{recipe.short_hash}.tmp{os.getpid()}"
        started = time.monotonic()
        try:
            with log_path.open("wb") as log:
                say(
                    recipe.suite,
                    f"building VM image {recipe.short_hash} (debootstrap from {mirror})",
                )
                debootstrap.run_debootstrap(
                    recipe, root, cache, mirror, log, image=f"{recipe.suite} VM image",
                    log_path=log_path, timeout=BUILD_TIMEOUT, host=recipe.suite,
                )  # fmt: skip
                t_boot = time.monotonic() - started
                manifest = vmmanifest.tree_manifest(root, mirror=mirror, suite=recipe.suite)
                version = customize_tree(root, recipe, mirror, log, log_path)
                debootstrap.unmount_below(root)
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir(parents=True)
                say(recipe.suite, f"writing the disk image (kernel {version})")
                initramfs = _write_boot_files(root, out, recipe, version, say)
                _run(mkfs_command(root, out / "disk.raw", recipe.root_size, _mke2fs_version()),
                     log, what="mkfs.ext4 -d", suite=recipe.suite, log_path=log_path)  # fmt: skip
            debootstrap.remove_tree(tmp)  # the tree is in the disk now: free its space
            seconds = time.monotonic() - started
            built = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            vmmanifest.write_manifest(out, {**manifest, "built": built})
            if check is not None:
                check(VmImage(recipe.suite, recipe.short_hash, out, version, round(seconds, 1)))
            meta = {
                "suite": recipe.suite,
                "recipe": recipe.digest,
                "short_hash": recipe.short_hash,
                "packages": list(recipe.packages),
                "kernel_version": version,
                "initramfs": initramfs,
                "mirror": mirror,
                "debootstrap_seconds": round(t_boot, 1),
                "build_seconds": round(seconds, 1),
                "built": built,
            }
            (out / "image.json").write_text(json.dumps(meta, indent=2) + "\n")
            final = recipe.directory
            if final.exists():
                shutil.rmtree(final)
            os.replace(out, final)
            total = time.monotonic() - started
            say(
                recipe.suite,
                f"built VM image {recipe.short_hash} in {total:.0f} s ({seconds:.0f} s to build"
                + (", then the boot check)" if check is not None else ")"),
            )
            img = load_image(recipe)
            if img is None:
                raise LabError(f"the {recipe.suite} VM image is incomplete after its build")
            return img
        finally:
            shutil.rmtree(out, ignore_errors=True)
            debootstrap.remove_tree(tmp)


def ensure_vm_images(
    suites: list[str],
    *,
    mirror: str | Callable[[], str],
    progress: Progress | None = None,
    check: ImageCheck | None = None,
    refresh: bool = False,
) -> dict[str, VmImage]:
    """The current image of each suite, building the missing ones one after another (each build
    uses both cores of a small machine; parallel builds only fight over them). ``check``: see
    ``build_vm_image``; ``refresh``: build every one afresh from the mirror (cached or not)."""
    result: dict[str, VmImage] = {}
    url: str | None = None
    for suite in dict.fromkeys(suites):
        recipe = vm_recipe_for(suite)
        found = None if refresh else load_image(recipe)
        if found is None:
            if url is None:
                url = mirror() if callable(mirror) else mirror
            found = build_vm_image(recipe, url, progress=progress, check=check, refresh=refresh)
            found = replace(found, built_now=True)
        result[suite] = found
    return result
