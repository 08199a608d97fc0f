"""The probe image's file plan: which libraries a host tool needs, read from the binary's own
loader (``PT_INTERP`` + ``--list``) instead of the ldd shell script."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tests.agenthelp import pa, run_py27


def elf_bytes(*, wide: bool, order: str, interp: bytes | None) -> bytes:
    """A minimal ELF file: the header, one program header (PT_INTERP, or PT_LOAD for a static
    binary) and the interpreter's path."""
    ehsize, phentsize = (64, 56) if wide else (52, 32)
    ident = b"\x7fELF" + (b"\x02" if wide else b"\x01") + (b"\x01" if order == "<" else b"\x02")
    ident += b"\x01" + b"\x00" * 9
    path = (interp or b"") + b"\x00"
    offset = ehsize + phentsize
    ptype = 3 if interp is not None else 1
    if wide:
        head = ident + struct.pack(
            order + "HHIQQQIHHHHHH", 2, 62, 1, 0, ehsize, 0, 0, ehsize, phentsize, 1, 0, 0, 0
        )
        ph = struct.pack(order + "IIQQQQQQ", ptype, 4, offset, 0, 0, len(path), len(path), 1)
    else:
        head = ident + struct.pack(
            order + "HHIIIIIHHHHHH", 2, 20, 1, 0, ehsize, 0, 0, ehsize, phentsize, 1, 0, 0, 0
        )
        ph = struct.pack(order + "IIIIIIII", ptype, offset, 0, 0, len(path), len(path), 4, 1)
    assert len(head) == ehsize and len(ph) == phentsize
    return head + ph + path


@pytest.mark.parametrize("wide", [True, False])
@pytest.mark.parametrize("order", ["<", ">"])
def test_elf_interpreter_of_every_class_and_byte_order(
    tmp_path: Path, wide: bool, order: str
) -> None:
    dynamic = tmp_path / "dynamic"
    dynamic.write_bytes(elf_bytes(wide=wide, order=order, interp=b"/lib/ld-test.so.1"))
    static = tmp_path / "static"
    static.write_bytes(elf_bytes(wide=wide, order=order, interp=None))
    assert pa.elf_interpreter(str(dynamic)) == "/lib/ld-test.so.1"
    assert pa.elf_interpreter(str(static)) == ""


def test_elf_interpreter_of_what_is_not_elf(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    short = tmp_path / "short"
    short.write_bytes(b"\x7fELF\x02\x01")
    broken = tmp_path / "broken"  # program headers said to lie past the end of the file
    data = bytearray(elf_bytes(wide=True, order="<", interp=b"/lib/ld.so"))
    data[32:40] = struct.pack("<Q", 10**6)
    broken.write_bytes(bytes(data))
    assert pa.elf_interpreter(str(script)) is None
    assert pa.elf_interpreter(str(short)) is None
    assert pa.elf_interpreter(str(tmp_path / "missing")) is None
    assert pa.elf_interpreter(str(broken)) is None  # ldd judges it


@pytest.mark.parametrize("tool", ["sh", "ls", "dd", "sleep"])
def test_loader_list_finds_what_ldd_finds(tool: str) -> None:
    """On this machine's real binaries: the same files as the ldd script reports."""
    binary = os.path.realpath(shutil.which(tool) or pytest.skip(f"no {tool} here"))
    ldd = shutil.which("ldd") or pytest.skip("no ldd here")
    interp = pa.elf_interpreter(binary)
    assert interp and os.path.isfile(interp)
    by_ldd = pa.parse_ldd(subprocess.run([ldd, binary], capture_output=True, text=True).stdout)
    assert pa.shared_libraries(binary) == by_ldd
    assert any("libc" in p for p in by_ldd[0])


def test_elf_interpreter_under_python27(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(elf_bytes(wide=False, order=">", interp=b"/lib/ld.so.1"))
    script = (
        "import json, sys\n"
        "print(json.dumps([pa.elf_interpreter(sys.argv[3]),"
        " pa.elf_interpreter(sys.argv[4])]))\n"
    )
    out = run_py27(tmp_path, script, str(big), os.path.realpath(shutil.which("ls") or "/bin/ls"))
    assert out[0] == "/lib/ld.so.1"
    assert out[1] and out[1].startswith("/")
