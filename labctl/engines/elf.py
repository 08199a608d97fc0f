"""ELF program headers: is a binary static (no interpreter, no dynamic section), and which
loader does a dynamic one name?

A static docker binary runs on any Linux of its architecture, which is why the era's binary
bundle was static and why labctl can install one build on every lab host.
"""

from __future__ import annotations

import struct
from pathlib import Path

PT_DYNAMIC = 2
PT_INTERP = 3


def program_header_types(path: Path) -> list[int]:
    """The p_type of each program header of a 64- or 32-bit ELF file; [] if not ELF."""
    with path.open("rb") as fh:
        ident = fh.read(16)
        if len(ident) < 16 or ident[:4] != b"\x7fELF":
            return []
        is64 = ident[4] == 2
        order = "<" if ident[5] == 1 else ">"
        if is64:
            head = fh.read(48)
            (phoff,) = struct.unpack_from(order + "Q", head, 16)
            phentsize, phnum = struct.unpack_from(order + "HH", head, 38)
        else:
            head = fh.read(36)
            (phoff,) = struct.unpack_from(order + "I", head, 12)
            phentsize, phnum = struct.unpack_from(order + "HH", head, 26)
        types: list[int] = []
        for i in range(phnum):
            fh.seek(phoff + i * phentsize)
            raw = fh.read(4)
            if len(raw) < 4:
                break
            types.append(struct.unpack(order + "I", raw)[0])
        return types


def is_static_elf(path: Path) -> bool:
    types = program_header_types(path)
    return bool(types) and PT_INTERP not in types and PT_DYNAMIC not in types


def interpreter(path: Path) -> str | None:
    """The loader a dynamic ELF binary names (its PT_INTERP), "" for one without, None when the
    file is not ELF: where a binary's loader must be, read from the binary itself."""
    with path.open("rb") as fh:
        ident = fh.read(16)
        if len(ident) < 16 or ident[:4] != b"\x7fELF":
            return None
        is64 = ident[4] == 2
        order = "<" if ident[5] == 1 else ">"
        head = fh.read(48 if is64 else 36)
        if is64:
            (phoff,) = struct.unpack_from(order + "Q", head, 16)
            phentsize, phnum = struct.unpack_from(order + "HH", head, 38)
        else:
            (phoff,) = struct.unpack_from(order + "I", head, 12)
            phentsize, phnum = struct.unpack_from(order + "HH", head, 26)
        for i in range(phnum):
            fh.seek(phoff + i * phentsize)
            ph = fh.read(phentsize)
            if (
                len(ph) < (56 if is64 else 32)
                or struct.unpack_from(order + "I", ph)[0] != PT_INTERP
            ):
                continue
            if is64:
                (offset,) = struct.unpack_from(order + "Q", ph, 8)
                (size,) = struct.unpack_from(order + "Q", ph, 32)
            else:
                (offset,) = struct.unpack_from(order + "I", ph, 4)
                (size,) = struct.unpack_from(order + "I", ph, 16)
            fh.seek(offset)
            return fh.read(min(size, 4096)).split(b"\0")[0].decode("utf-8", "replace")
        return ""
