"""The VM's own small initramfs: klibc's shell and tools, the few kernel modules the root disk,
the NIC and fw_cfg need, and ``image_files/labctl-initramfs-init`` as /init.

The suites' cloud kernels build virtio as modules, so a boot needs an initrd. initramfs-tools'
initrd (14 MB unpacked, udev, kmod with libcrypto, a settle loop) spent 4-6 s under TCG before
the first module was even loaded; this one is ~0.5 MB, loads the modules with klibc's insmod in
the order modules.dep gives and mounts the disk whose virtio serial is ``labctl-root``.
The archive is written here (newc cpio, uncompressed: nothing to unpack slowly under TCG), so no
cpio tool and no root privileges are needed for the device node of /dev/console.
"""

from __future__ import annotations

import gzip
import lzma
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...engines.elf import interpreter
from ...errors import LabError

#: modules for the root disk and ext4 (built in on these kernels), the NIC and fw_cfg, by name;
#: a module the kernel has built in is skipped
BOOT_MODULES: tuple[str, ...] = ("virtio_pci", "virtio_blk", "ext4", "virtio_net", "qemu_fw_cfg")
#: klibc tools /init uses (from /usr/lib/klibc/bin of the image tree)
KLIBC_TOOLS: tuple[str, ...] = ("sh", "insmod", "mount", "umount", "run-init", "sleep", "cat")
_MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.gz", ".ko.zst")


class Unsupported(LabError):
    """The image tree lacks what this initramfs needs (bullseye's klibc-utils has no insmod):
    the image keeps initramfs-tools' initrd instead."""


# --- pure pieces --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One member of the archive: a directory, a regular file or a character device."""

    path: str  # without a leading slash
    mode: int  # with the file type bits
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def directory(path: str) -> Entry:
    return Entry(path, 0o040755)


def regular(path: str, data: bytes, perm: int = 0o644) -> Entry:
    return Entry(path, 0o100000 | perm, data)


def chardev(path: str, major: int, minor: int, perm: int = 0o600) -> Entry:
    return Entry(path, 0o020000 | perm, rdev=(major, minor))


def cpio_newc(entries: Iterable[Entry]) -> bytes:
    """An uncompressed ``newc`` cpio archive (what the kernel unpacks as an initramfs), owned by
    root, mtime 0: the same entries give the same bytes."""
    out = bytearray()

    def add(ino: int, name: str, mode: int, data: bytes, rdev: tuple[int, int]) -> None:
        raw = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(raw), 0)
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields) + raw)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    for ino, e in enumerate(entries, start=1):
        if not e.path or e.path.startswith("/"):
            raise ValueError(f"archive paths are relative: {e.path!r}")
        add(ino, e.path, e.mode, e.data, e.rdev)
    add(0, "TRAILER!!!", 0, b"", (0, 0))
    out.extend(b"\0" * (-len(out) % 512))
    return bytes(out)


def module_name(path: str) -> str:
    """``kernel/drivers/virtio/virtio_pci.ko.xz`` -> ``virtio_pci`` (dashes as underscores)."""
    base = path.rsplit("/", 1)[-1]
    for suffix in _MODULE_SUFFIXES[::-1]:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def load_order(dep_text: str, builtin_text: str, wanted: Sequence[str]) -> list[str]:
    """The module files (paths as in modules.dep) to insmod for ``wanted``, dependencies first,
    each once; built-in modules are skipped, an unknown one is a LabError."""
    deps: dict[str, list[str]] = {}
    path_of: dict[str, str] = {}
    for line in dep_text.splitlines():
        if ":" not in line:
            continue
        mod, _, rest = line.partition(":")
        path_of[module_name(mod.strip())] = mod.strip()
        deps[mod.strip()] = rest.split()
    builtin = {module_name(p.strip()) for p in builtin_text.splitlines() if p.strip()}
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in reversed(deps.get(path, [])):  # modules.dep lists the nearest last
            visit(dep)
        order.append(path)

    for name in wanted:
        key = name.replace("-", "_")
        if key in path_of:
            visit(path_of[key])
        elif key not in builtin:
            raise LabError(
                f"kernel module {name} is neither a module nor built in (modules.dep)",
                hint="the VM image's kernel package changed; see labctl/drivers/qemu/initramfs.py",
            )
    return order


def initramfs_entries(
    init: bytes, tools: Mapping[str, bytes], klibc_so: tuple[str, bytes],
    modules: Sequence[tuple[str, bytes]],
) -> list[Entry]:  # fmt: skip
    """The archive's members: /init, /bin/<klibc tools>, klibc's .so at the path the tools name
    as their interpreter (``klibc_so``: that path, its bytes), /modules/NN-<name>.ko in load
    order and /modules/order, the mount points, /dev/console."""
    dirs = ["bin", "dev", "lib", "modules", "proc", "root", "sys"]
    so_path = klibc_so[0].strip("/")
    parts = so_path.split("/")[:-1]
    dirs += ["/".join(parts[: i + 1]) for i in range(len(parts))]
    entries = [directory(d) for d in sorted(set(dirs), key=lambda d: (d.count("/"), d))]
    entries.append(chardev("dev/console", 5, 1))
    entries.append(regular("init", init, 0o755))
    entries += [regular(f"bin/{name}", data, 0o755) for name, data in sorted(tools.items())]
    entries.append(regular(so_path, klibc_so[1], 0o755))
    names = []
    for i, (name, data) in enumerate(modules):
        names.append(f"{i:02d}-{name}.ko")
        entries.append(regular(f"modules/{names[-1]}", data))
    entries.append(regular("modules/order", "".join(n + "\n" for n in names).encode()))
    return entries


# --- from an image tree -------------------------------------------------------------------------


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko.zst"):
        raise LabError(
            f"kernel module {path.name} is zstd-compressed; klibc's insmod needs it plain",
            hint="decompress it in the image build (see labctl/drivers/qemu/initramfs.py)",
        )
    return data


def build_initramfs(root: Path, version: str, init: bytes) -> bytes:
    """The initramfs of the kernel ``version`` installed in the image tree ``root``."""
    klibc_bin = root / "usr/lib/klibc/bin"
    sos = sorted((root / "usr/lib").glob("klibc-*.so"))
    missing = [t for t in KLIBC_TOOLS if not (klibc_bin / t).is_file()]
    if not sos or missing:
        raise Unsupported(
            "klibc in the VM image tree lacks "
            + (", ".join(missing) if missing else "its shared library")
        )
    mod_dir = next(
        (d for d in (root / "usr/lib/modules" / version, root / "lib/modules" / version)
         if (d / "modules.dep").is_file()),
        None,
    )  # fmt: skip
    if mod_dir is None:
        raise LabError(f"no modules.dep for kernel {version} in the VM image tree")
    builtin = mod_dir / "modules.builtin"
    order = load_order(
        (mod_dir / "modules.dep").read_text(),
        builtin.read_text() if builtin.is_file() else "",
        BOOT_MODULES,
    )
    tools = {name: (klibc_bin / name).read_bytes() for name in KLIBC_TOOLS}
    modules = [(module_name(p), _module_bytes(mod_dir / p)) for p in order]
    return cpio_newc(initramfs_entries(init, tools, klibc_loader(root, klibc_bin, sos), modules))


def klibc_loader(root: Path, klibc_bin: Path, sos: Sequence[Path]) -> tuple[str, bytes]:
    """Where klibc's tools want their shared library (their PT_INTERP: /lib/klibc-<hash>.so up
    to bookworm, /usr/lib/klibc-<hash>.so in trixie, whose initramfs then found no init) and
    its bytes, read from the tree's own files, never assumed."""
    wanted = interpreter(klibc_bin / "sh")
    if not wanted:
        raise LabError(
            f"klibc's sh in the VM image tree names no interpreter ({wanted!r})",
            hint="the klibc-utils package changed; see labctl/drivers/qemu/initramfs.py",
        )
    name = wanted.rsplit("/", 1)[-1]
    found = [so for so in sos if so.name == name]
    if not found:
        raise LabError(
            f"klibc's tools name {wanted} as their loader, but the tree has only "
            f"{', '.join(so.name for so in sos)}",
            hint="the klibc packages of the mirror disagree; rebuild when they match",
        )
    return wanted, found[0].read_bytes()
