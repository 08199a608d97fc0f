"""A small Debian cloud image WITH cloud-init, built from the Debian mirror: a stand-in for the
vendors' cloud images (CentOS-7-x86_64-GenericCloud.qcow2, Ubuntu's, Debian's genericcloud),
which cannot be downloaded everywhere. It is booted through exactly the path a user's image
takes (``--host image:path=...``): firmware boot with its own bootloader and kernel, a NoCloud
seed, nothing of labctl inside.

Layout like the vendors': one qcow2 file, an MBR partition table with one ext4 partition
(label ``cloudimg-rootfs``) at 1 MiB, GRUB (i386-pc) in the MBR and the gap before it, the
kernel command line in /boot/grub/grub.cfg (``console=ttyS0``). Built with no loop mount: the
tree goes into a partition image with ``mkfs.ext4 -d``, which is copied into the disk at its
offset; the partition table (``sfdisk``) and GRUB's core image (``grub-mkimage``) come from the
image's own packages, run in its chroot, and GRUB's two pieces are written into the disk file
where grub-install puts them, so the controller needs no bootloader tools. No Docker inside
unless a variant adds it (``extra_packages``): provisioning installs it, as on a vendor's image.

Cached like the other images (``cache_dir()/cloud/<suite>-<recipe hash 12>/disk.qcow2``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl import debootstrap
from labctl.drivers.qemu import images as vmimages
from labctl.drivers.qemu.vm import QEMU_IMG
from labctl.errors import ConfigError, LabError
from labctl.hosts import Progress
from labctl.locks import file_lock
from labctl.paths import cache_dir

RECIPE_VERSION = 1
DISK_SIZE = 3 << 30  # sparse
PART_START = 1 << 20  # the first partition at 1 MiB, as fdisk puts it
ROOT_LABEL = "cloudimg-rootfs"
SUITES = ("bookworm",)

CLOUD_PACKAGES: tuple[str, ...] = (
    "linux-image-cloud-amd64",
    "initramfs-tools",
    "systemd-sysv",
    "udev",
    "kmod",
    "openssh-server",
    "cloud-init",
    "python3-cffi-backend",  # debootstrap does not resolve the virtual cffi-backend-api-*
    "ifupdown",  # cloud-init's eni renderer: DHCP on the first NIC
    "isc-dhcp-client",
    "netbase",
    "grub-pc-bin",  # grub-mkimage and the i386-pc modules, run in the chroot
    "fdisk",  # sfdisk, run in the chroot on the disk file
    "python3",
    "iproute2",
    "procps",
    "ca-certificates",
    "sudo",
)
GRUB_MODULES: tuple[str, ...] = ("biosdisk", "part_msdos", "ext2", "normal", "linux", "search")
#: what the image's kernel gets (the vendors' images also log to the serial console)
KERNEL_ARGS = f"root=LABEL={ROOT_LABEL} ro console=tty0 console=ttyS0,115200 net.ifnames=0"
BUILD_TIMEOUT = 1800.0


def cloud_cache_dir() -> Path:
    return cache_dir() / "cloud"


@dataclass(frozen=True)
class CloudRecipe(debootstrap.ImageRecipe):
    version: int = RECIPE_VERSION
    disk_size: int = DISK_SIZE

    def settings(self) -> dict[str, Any]:
        return {
            **self.common_settings(self.version, "cloud-image"),
            "disk_size": self.disk_size,
            "grub": list(GRUB_MODULES),
            "kernel_args": KERNEL_ARGS,
            "initramfs": [vmimages.INITRAMFS_CONF, list(vmimages.INITRAMFS_MODULES)],
        }

    @property
    def directory(self) -> Path:
        return cloud_cache_dir() / f"{self.suite}-{self.short_hash}"

    @property
    def disk(self) -> Path:
        return self.directory / "disk.qcow2"


def cloud_recipe_for(suite: str = "bookworm", extra_packages: tuple[str, ...] = ()) -> CloudRecipe:
    """The recipe of ``suite``'s cloud image; ``extra_packages`` make a variant, as the vendors'
    ready-made images do (e.g. ``docker.io``, like a cloud's "Docker" image)."""
    if suite not in SUITES:
        raise ConfigError(f"no cloud image recipe for {suite!r}", hint=f"use {', '.join(SUITES)}")
    packages = CLOUD_PACKAGES + tuple(p for p in extra_packages if p not in CLOUD_PACKAGES)
    return CloudRecipe(suite=suite, packages=packages, files={})


def grub_cfg(kernel_version: str) -> str:
    return (
        "set timeout=0\n"
        f"search --no-floppy --label --set=root {ROOT_LABEL}\n"
        f"linux /boot/vmlinuz-{kernel_version} {KERNEL_ARGS}\n"
        f"initrd /boot/initrd.img-{kernel_version}\n"
        "boot\n"
    )


def sfdisk_script(disk_size: int) -> str:
    """One bootable Linux partition from 1 MiB to the end (sectors of 512 bytes)."""
    start = PART_START // 512
    return f"label: dos\nstart={start}, size={disk_size // 512 - start}, type=83, bootable\n"


def load_cloud_image(recipe: CloudRecipe) -> Path | None:
    try:
        meta = json.loads((recipe.directory / "image.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("recipe") != recipe.digest:
        return None
    return recipe.disk if recipe.disk.is_file() else None


def _customize(root: Path, recipe: CloudRecipe, mirror: str, run: Any) -> str:
    """The tree as a cloud image: apt source, fstab, initrd, GRUB's files; no host keys (cloud-init
    writes the seed's); returns the kernel version."""
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc" / "apt" / "sources.list").write_text(f"deb {mirror} {recipe.suite} main\n")
    (root / "etc" / "fstab").write_text(f"LABEL={ROOT_LABEL} / ext4 rw,errors=remount-ro 0 1\n")
    (root / "etc" / "hostname").write_text("localhost\n")
    (root / "etc" / "machine-id").write_text("")
    resolv = root / "etc" / "resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("nameserver 10.0.2.3\n")
    interfaces = root / "etc" / "network" / "interfaces"
    interfaces.parent.mkdir(parents=True, exist_ok=True)
    interfaces.write_text("auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n")
    conf = root / "etc" / "initramfs-tools"
    (conf / "conf.d").mkdir(parents=True, exist_ok=True)
    (conf / "conf.d" / "labctl.conf").write_text(vmimages.INITRAMFS_CONF)
    (conf / "modules").write_text("".join(f"{m}\n" for m in vmimages.INITRAMFS_MODULES))
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise LabError("no kernel in /boot of the cloud image tree")
    version = kernels[-1].name.removeprefix("vmlinuz-")
    has_initrd = (root / "boot" / f"initrd.img-{version}").is_file()
    run(["chroot", str(root), "update-initramfs", "-u" if has_initrd else "-c", "-k", version],
        "update-initramfs")  # fmt: skip
    grub = root / "boot" / "grub"
    grub.mkdir(parents=True, exist_ok=True)
    shutil.copytree(root / "usr" / "lib" / "grub" / "i386-pc", grub / "i386-pc",
                    dirs_exist_ok=True)  # fmt: skip
    (grub / "grub.cfg").write_text(grub_cfg(version))
    run(["chroot", str(root), "grub-mkimage", "-O", "i386-pc", "-o", "/boot/grub/i386-pc/core.img",
         "-p", "(hd0,msdos1)/boot/grub", *GRUB_MODULES], "grub-mkimage")  # fmt: skip
    debootstrap.finish_tree(
        root, {"suite": recipe.suite, "recipe": recipe.digest, "kernel_version": version},
        debootstrap.APT_LEFTOVERS,
    )  # fmt: skip
    shutil.rmtree(root / "debootstrap", ignore_errors=True)
    return version


def install_grub(disk: Path, boot_img: bytes, core_img: bytes) -> None:
    """GRUB in the MBR and the gap before the partition, as grub-install lays it out:
    boot.img's code (its first 440 bytes; the partition table stays) in sector 0, whose default
    says "core at sector 1", and core.img from sector 1, whose first sector grub-mkimage made
    to load the rest from sector 2 on. (grub-bios-setup does the same on a device but refuses
    a disk file whose root it cannot guess.)"""
    if len(boot_img) != 512 or boot_img[510:512] != b"\x55\xaa":
        raise LabError("GRUB's boot.img is not a boot sector")
    if len(core_img) > PART_START - 512:
        raise LabError(f"GRUB's core.img ({len(core_img)} bytes) does not fit before the partition")
    with disk.open("r+b") as f:
        f.seek(0)
        f.write(boot_img[:440])
        f.seek(512)
        f.write(core_img)


def copy_into(part: Path, disk: Path, offset: int) -> None:
    """Copy ``part`` into ``disk`` at ``offset``, keeping holes (both files are sparse)."""
    chunk = 1 << 20
    with part.open("rb") as src, disk.open("r+b") as dst:
        pos = 0
        while True:
            block = src.read(chunk)
            if not block:
                break
            if block.count(0) != len(block):
                dst.seek(offset + pos)
                dst.write(block)
            pos += len(block)


def build_cloud_image(
    recipe: CloudRecipe, mirror: str, *, progress: Progress | None = None
) -> Path:
    """Build the cloud image into the cache (under a lock) and return its qcow2 file."""
    say = progress or (lambda _h, _m: None)
    with file_lock(cloud_cache_dir() / f".lock-{recipe.suite}"):
        found = load_cloud_image(recipe)
        if found is not None:
            return found
        vmimages.check_vm_build_prerequisites()
        cache = debootstrap.debootstrap_cache(recipe.suite)
        cache.mkdir(parents=True, exist_ok=True)
        log_path = cache_dir() / "logs" / f"cloud-build-{recipe.suite}-{recipe.short_hash}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{debootstrap.BUILD_DIR_PREFIX}cloud-{recipe.suite}-"))
        root = tmp / "root"
        out = cloud_cache_dir() / f".{recipe.suite}-{recipe.short_hash}.tmp{os.getpid()}"
        started = time.monotonic()
        image = f"{recipe.suite} cloud image"
        try:
            with log_path.open("wb") as log:

                def run(cmd: list[str], what: str) -> None:
                    debootstrap.run_logged(cmd, log, timeout=600.0, what=what, image=image,
                                           log_path=log_path, host=recipe.suite)  # fmt: skip

                say(recipe.suite, f"building cloud image {recipe.short_hash} (debootstrap)")
                debootstrap.run_debootstrap(
                    recipe, root, cache, mirror, log, image=image, log_path=log_path,
                    timeout=BUILD_TIMEOUT, host=recipe.suite,
                )  # fmt: skip
                version = _customize(root, recipe, mirror, run)
                debootstrap.unmount_below(root)
                part, work = tmp / "part.raw", root / "tmp" / "disk.raw"
                run(vmimages.mkfs_command(root, part, recipe.disk_size - PART_START,
                                          vmimages._mke2fs_version()), "mkfs.ext4 -d")  # fmt: skip
                run(["e2label", str(part), ROOT_LABEL], "e2label")
                with work.open("wb") as f:  # the disk file inside the chroot, for its tools
                    f.truncate(recipe.disk_size)
                (root / "tmp" / "disk.sfdisk").write_text(sfdisk_script(recipe.disk_size))
                run(["chroot", str(root), "sh", "-c", "sfdisk -q /tmp/disk.raw < /tmp/disk.sfdisk"],
                    "sfdisk")  # fmt: skip
                copy_into(part, work, PART_START)
                part.unlink()
                grub = root / "boot" / "grub" / "i386-pc"
                install_grub(work, (grub / "boot.img").read_bytes(),
                             (grub / "core.img").read_bytes())  # fmt: skip
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir(parents=True)
                run([QEMU_IMG, "convert", "-q", "-O", "qcow2", str(work), str(out / "disk.qcow2")],
                    "qemu-img convert")  # fmt: skip
                seconds = time.monotonic() - started
                meta = {
                    "suite": recipe.suite, "recipe": recipe.digest, "kernel_version": version,
                    "mirror": mirror, "build_seconds": round(seconds, 1),
                    "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }  # fmt: skip
                (out / "image.json").write_text(json.dumps(meta, indent=2) + "\n")
                if recipe.directory.exists():
                    shutil.rmtree(recipe.directory)
                os.replace(out, recipe.directory)
            say(recipe.suite, f"built cloud image {recipe.short_hash} in {seconds:.0f} s")
            found = load_cloud_image(recipe)
            if found is None:
                raise LabError(f"the {image} is incomplete after its build")
            return found
        finally:
            shutil.rmtree(out, ignore_errors=True)
            debootstrap.remove_tree(tmp)
