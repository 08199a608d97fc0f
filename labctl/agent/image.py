# -*- coding: utf-8 -*-
"""The probe image: no registry, a tarball of the host's own tools and their libraries,
imported once per run."""

from __future__ import absolute_import, division, print_function

import hashlib
import os
import struct
import tarfile
import time

from .consts import AGENT_VERSION, DEFAULT_PROBE_TOOLS, IMAGE_REPO, TOOL_DIRS
from .errors import ExperimentError
from .hostpaths import open_replacing
from .osparse import parse_ldd
from .runstate import live_agent_run_ids
from .text import run_cmd, which


def find_tool(name):
    for d in TOOL_DIRS:
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def _loader_candidates():
    found = []
    for d in ("/lib64", "/lib", "/usr/lib64", "/usr/lib"):
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in sorted(names):
            if n.startswith("ld-linux") or n.startswith("ld64.so") or n.startswith("ld-musl"):
                found.append(os.path.join(d, n))
    return found


def elf_interpreter(path):
    """The loader a dynamic ELF binary names (PT_INTERP); "" for a static ELF binary; None when
    the file is not ELF or cannot be read."""
    try:
        f = open(path, "rb")
    except (IOError, OSError):
        return None
    try:
        head = f.read(64)
        if len(head) < 52 or head[:4] != b"\x7fELF" or head[4:5] not in (b"\x01", b"\x02"):
            return None
        wide = head[4:5] == b"\x02"
        order = "<" if head[5:6] == b"\x01" else ">"
        if wide:
            phoff, = struct.unpack(order + "Q", head[32:40])
            phentsize, phnum = struct.unpack(order + "HH", head[54:58])
        else:
            phoff, = struct.unpack(order + "I", head[28:32])
            phentsize, phnum = struct.unpack(order + "HH", head[42:46])
        for i in range(min(phnum, 64)):
            f.seek(phoff + i * phentsize)
            ph = f.read(phentsize)
            if len(ph) < (56 if wide else 32):
                return None  # headers past the end: let ldd judge it
            if struct.unpack(order + "I", ph[:4])[0] != 3:
                continue  # not PT_INTERP
            if wide:
                offset, = struct.unpack(order + "Q", ph[8:16])
                size, = struct.unpack(order + "Q", ph[32:40])
            else:
                offset, = struct.unpack(order + "I", ph[4:8])
                size, = struct.unpack(order + "I", ph[16:20])
            f.seek(offset)
            return f.read(min(size, 4096)).split(b"\x00")[0].decode("utf-8", "replace")
        return ""
    except (IOError, OSError, struct.error):
        return None
    finally:
        f.close()


def shared_libraries(binary):
    """Files (libraries and loader) a dynamic binary needs: by its own loader's ``--list`` (one
    small process; ldd is a shell script that costs ten times the CPU), else by ldd, else by
    any loader found."""
    interp = elf_interpreter(binary)
    if interp == "":
        return [], []  # static: nothing to carry
    if interp and os.path.isfile(interp):
        res = run_cmd([interp, "--list", binary], timeout=30)
        if res.ok and res.out.strip():
            return parse_ldd(res.out)
    ldd = which("ldd") or find_tool("ldd")
    res = None
    if ldd:
        res = run_cmd([ldd, binary], timeout=30)
    if res is None or (res.rc != 0 and "not a dynamic" not in (res.out + res.err)):
        for loader in _loader_candidates():
            res = run_cmd([loader, "--list", binary], timeout=30)
            if res.ok:
                break
    if res is None:
        return [], []
    return parse_ldd(res.out)


def probe_image_plan(tools=DEFAULT_PROBE_TOOLS):
    """Which host files go where in the image: [(arcname, kind, source_or_target)].

    kind is "file" (source = host path) or "symlink" (target = link text).
    """
    entries = {}
    needed = []
    for tool in tools:
        found = find_tool(tool)
        if not found:
            continue
        real = os.path.realpath(found)
        base = os.path.basename(real)
        if base == tool:
            entries["/bin/" + tool] = ("file", real)
        else:  # multi-call binaries (busybox, dash as sh) keep argv[0] through a link
            entries["/bin/" + base] = ("file", real)
            entries["/bin/" + tool] = ("symlink", base)
        if real not in needed:
            needed.append(real)
    for binary in needed:
        libs, _missing = shared_libraries(binary)
        for lib in libs:
            if lib not in entries:
                entries[lib] = ("file", os.path.realpath(lib))
    if os.path.isfile("/etc/ld.so.cache") and entries:
        entries["/etc/ld.so.cache"] = ("file", "/etc/ld.so.cache")
    plan = []
    for arc in sorted(entries):
        kind, src = entries[arc]
        plan.append((arc, kind, src))
    return plan


def probe_image_tag(plan):
    h = hashlib.sha256()
    h.update(("labctl-probe %s\n" % AGENT_VERSION).encode("utf-8"))
    for arc, kind, src in plan:
        size = os.path.getsize(src) if kind == "file" else 0
        target = src if kind == "symlink" else ""
        h.update(("%s %s %d %s\n" % (arc, kind, size, target)).encode("utf-8"))
    return h.hexdigest()[:12]


def write_probe_tar(plan, tar_path):
    """Write the image tarball; returns its size in bytes."""
    dirs = set(["/tmp", "/proc", "/sys", "/dev", "/etc", "/bin"])
    for arc, _kind, _src in plan:
        d = os.path.dirname(arc)
        while d and d != "/":
            dirs.add(d)
            d = os.path.dirname(d)
    now = int(time.time())
    out = open_replacing(tar_path)
    tar = tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT)
    try:
        for d in sorted(dirs):
            ti = tarfile.TarInfo(d.lstrip("/"))
            ti.type = tarfile.DIRTYPE
            ti.mode = 0o1777 if d == "/tmp" else 0o755
            ti.mtime = now
            tar.addfile(ti)
        for arc, kind, src in plan:
            ti = tarfile.TarInfo(arc.lstrip("/"))
            ti.mtime = now
            if kind == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = src
                ti.mode = 0o777
                tar.addfile(ti)
                continue
            st = os.stat(src)
            ti.size = st.st_size
            ti.mode = st.st_mode & 0o7777
            f = open(src, "rb")
            try:
                tar.addfile(ti, f)
            finally:
                f.close()
    finally:
        tar.close()
        out.close()
    return os.path.getsize(tar_path)


def ensure_probe_image(docker, work_dir, tools=DEFAULT_PROBE_TOOLS, timeout=120):
    """Build (or reuse) labctl-probe:<tag> from the host's own tools via `docker import`."""
    plan = probe_image_plan(tools)
    files = [arc for arc, _kind, _src in plan]
    if not [a for a in files if a.startswith("/bin/")] or "/bin/sh" not in files:
        raise ExperimentError("probe-image", "cannot build the probe image: no /bin/sh "
                              "found on the host (looked in %s)" % ", ".join(TOOL_DIRS))
    tag = probe_image_tag(plan)
    image = "%s:%s" % (IMAGE_REPO, tag)
    info = {"probe_image": image, "probe_image_files": len(plan), "probe_image_built": False,
            "probe_image_bytes": None}
    res = docker.run(["inspect", "--format", "{{.Id}}", image], 30)
    if res.ok and res.out.strip():
        return info
    tar_path = os.path.join(work_dir, "probe-image-%s.tar" % tag)
    try:
        info["probe_image_bytes"] = write_probe_tar(plan, tar_path)
        f = open(tar_path, "rb")
        try:
            res = docker.run(["import", "-", image], timeout, stdin_file=f)
        finally:
            f.close()
    finally:
        try:
            os.remove(tar_path)
        except OSError:
            pass
    if not res.ok:
        raise ExperimentError("probe-image", "`docker import` of the probe image failed (%s)"
                              % res.describe())
    info["probe_image_built"] = True
    info["probe_images_removed"] = remove_other_probe_images(docker, image)
    return info


def remove_other_probe_images(docker, keep):
    """Drop probe images of earlier tool sets, so they do not pile up on the host.

    Only when no other agent runs on this host (it may be about to start a container from
    one); an image a container still uses is refused by the engine and kept anyway.
    """
    if len(live_agent_run_ids()) > 1:
        return 0
    res = docker.run(["images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPO], 30)
    if not res.ok:  # Docker < 1.8 has no --format here: leave them, they are small
        return 0
    removed = 0
    for name in res.out.split():
        if name.startswith(IMAGE_REPO + ":") and name != keep and \
                docker.run(["rmi", name], 30).ok:
            removed += 1
    return removed
