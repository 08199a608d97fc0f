"""Is a binary a static ELF executable? (No interpreter and no dynamic section.)

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
