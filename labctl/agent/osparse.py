# -*- coding: utf-8 -*-
"""Parsers of the host's own files and commands (os-release, /proc/mounts, mountinfo,
meminfo, vmstat, ldd, ps): pure, except host_mounts() and detect_distribution()."""

from __future__ import absolute_import, division, print_function

import os
import re

from .text import UNICHR, first_line, read_text, to_int


def _unquote(value):
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
        value = re.sub(r"\\(.)", r"\1", value)
    return value


def parse_keyvalue_file(text):
    """KEY=value lines (os-release, lsb-release) -> dict."""
    result = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        result[key.strip()] = _unquote(value)
    return result


def distribution_record(id_=None, version=None, name=None, pretty=None, source=None):
    return {"id": id_, "version": version, "name": name, "pretty": pretty, "source": source}


def parse_os_release(text):
    kv = parse_keyvalue_file(text)
    if not kv:
        return None
    return distribution_record(kv.get("ID") or None, kv.get("VERSION_ID") or None,
                         kv.get("NAME") or None, kv.get("PRETTY_NAME") or None, "os-release")


_REDHAT_IDS = (
    ("centos", "centos"), ("red hat", "rhel"), ("fedora", "fedora"),
    ("scientific", "scientific"), ("oracle", "ol"), ("rocky", "rocky"),
    ("almalinux", "almalinux"), ("cloudlinux", "cloudlinux"),
)


def parse_redhat_release(text):
    """'CentOS release 6.6 (Final)' -> id centos, version 6.6, name CentOS."""
    line = first_line(text)
    if not line:
        return None
    m = re.match(r"^(.*?)\s+release\s+([0-9][0-9.]*)", line)
    if m:
        name, version = m.group(1).strip(), m.group(2)
    else:
        name, version = line, None
    lower = name.lower()
    id_ = None
    for prefix, ident in _REDHAT_IDS:
        if lower.startswith(prefix):
            id_ = ident
            break
    if id_ is None:
        id_ = lower.split()[0] if lower.split() else None
    return distribution_record(id_, version, name, line, "redhat-release")


def parse_lsb_release(text):
    kv = parse_keyvalue_file(text)
    if not kv.get("DISTRIB_ID"):
        return None
    ident = kv.get("DISTRIB_ID")
    return distribution_record(ident.lower(), kv.get("DISTRIB_RELEASE") or None, ident,
                         kv.get("DISTRIB_DESCRIPTION") or None, "lsb-release")


def parse_debian_version(text):
    line = first_line(text)
    if not line:
        return None
    return distribution_record("debian", line, "Debian GNU/Linux", "Debian GNU/Linux " + line,
                         "debian_version")


def detect_distribution(root="/"):
    """Distribution from os-release, else redhat-release, lsb-release, debian_version."""
    def rd(rel):
        return read_text(os.path.join(root, rel))
    found = None
    for rel in ("etc/os-release", "usr/lib/os-release"):
        text = rd(rel)
        if text:
            found = parse_os_release(text)
            if found:
                break
    redhat = parse_redhat_release(rd("etc/redhat-release"))
    debian = parse_debian_version(rd("etc/debian_version"))
    if found is None:
        found = redhat or parse_lsb_release(rd("etc/lsb-release")) or debian
    if found is None:
        return distribution_record()
    # the full point release the os-release file leaves out (CentOS 7 says only "7")
    full = found.get("version")
    if redhat and redhat.get("version") and found.get("id") == redhat.get("id"):
        full = redhat["version"]
    elif debian and found.get("id") == "debian":
        full = debian["version"]
    found["version_full"] = full
    return found


def parse_proc_cgroups(text):
    """/proc/cgroups -> sorted list of enabled controller names."""
    names = []
    for line in (text or "").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) >= 4 and fields[3] == "1":
            names.append(fields[0])
    return sorted(names)


def parse_meminfo(text):
    """/proc/meminfo -> {key: bytes}."""
    result = {}
    for line in (text or "").splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if not fields:
            continue
        try:
            value = int(fields[0])
        except ValueError:
            continue
        if len(fields) > 1 and fields[1].lower() == "kb":
            value *= 1024
        result[key.strip()] = value
    return result


def _unescape_mount(field):
    return re.sub(r"\\([0-7]{3})", lambda m: UNICHR(int(m.group(1), 8)), field)


def parse_proc_mounts(text):
    """/proc/mounts -> list of dicts source, mountpoint, fstype, options (in order)."""
    mounts = []
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        mounts.append({"source": _unescape_mount(fields[0]),
                       "mountpoint": _unescape_mount(fields[1]),
                       "fstype": fields[2], "options": fields[3]})
    return mounts


def parse_mountinfo(text):
    """/proc/self/mountinfo -> the dicts of parse_proc_mounts, plus the mount's root in its
    filesystem (field 4) and the superblock options (after the fs type and source)."""
    mounts = []
    for line in (text or "").splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf = left.split()
        rf = right.split()
        if len(lf) < 5 or len(rf) < 2:
            continue
        mounts.append({"source": _unescape_mount(rf[1]), "mountpoint": _unescape_mount(lf[4]),
                       "fstype": rf[0], "options": lf[5] if len(lf) > 5 else "",
                       "root": _unescape_mount(lf[3]),
                       "super_options": rf[2] if len(rf) > 2 else ""})
    return mounts


def host_mounts():
    """This host's mount table: mountinfo, else /proc/mounts (old kernels)."""
    return parse_mountinfo(read_text("/proc/self/mountinfo")) or \
        parse_proc_mounts(read_text("/proc/mounts"))


def mounts_under(folder):
    """Mount points at or below ``folder`` (from /proc/self/mounts), deepest first: what must be
    unmounted before the folder is removed."""
    folder = folder.rstrip("/")
    found = [m["mountpoint"] for m in parse_proc_mounts(read_text("/proc/self/mounts"))
             if m["mountpoint"] == folder or m["mountpoint"].startswith(folder + "/")]
    return sorted(found, key=len, reverse=True)


def find_mount(mounts, path):
    """The mount that holds ``path``: longest mount point prefix, last one wins."""
    best = None
    best_len = -1
    for m in mounts:
        mp = m["mountpoint"]
        if mp == "/" or path == mp or path.startswith(mp.rstrip("/") + "/"):
            if m["fstype"] == "rootfs" and mp == "/":
                # the initramfs rootfs entry of old kernels; the real / follows it
                if best is None:
                    best, best_len = m, 0
                continue
            if len(mp) >= best_len:
                best, best_len = m, len(mp)
    return best


def path_under(path, root):
    """Is ``path`` (links resolved) below the folder ``root``?"""
    if not path or not root:
        return False
    p = os.path.realpath(path)
    r = os.path.realpath(root).rstrip("/")
    return p.startswith(r + "/")


def root_mount(mounts):
    """The entry of the mount at '/' (from a container's own mount table)."""
    return find_mount(mounts, "/")


def parse_ldd(text):
    """ldd output -> (paths of needed files incl. the loader, names not found)."""
    paths = []
    missing = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        if "=>" in line:
            name, _, rest = line.partition("=>")
            rest = rest.strip()
            if rest.startswith("not found"):
                missing.append(name.strip())
                continue
            target = rest.split(" (")[0].strip()
            if target.startswith("/"):
                paths.append(target)
        elif line.startswith("/"):
            paths.append(line.split(" (")[0].strip())
    unique = []
    for p in paths:
        if p not in unique:
            unique.append(p)
    return unique, missing


def parse_ps_names(text):
    """`docker ps -a` output (table, or '{{.ID}} {{.Names}}' lines) -> [(id, [names])]."""
    rows = []
    for line in (text or "").splitlines():
        if not line.strip() or line.startswith("CONTAINER ID"):
            continue
        fields = line.split()
        if len(fields) < 2:
            continue
        names = [n.strip("/") for n in fields[-1].split(",") if n.strip("/")]
        # a link alias ("other/alias") is not a name of this container
        names = [n for n in names if "/" not in n]
        rows.append((fields[0], names))
    return rows


def parse_vmstat(text):
    """/proc/vmstat -> {key: int}."""
    result = {}
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) == 2:
            value = to_int(fields[1])
            if value is not None:
                result[fields[0]] = value
    return result


def mem_available(meminfo):
    """(bytes, source): MemAvailable, else MemFree + Buffers + Cached (kernels before 3.14)."""
    if meminfo.get("MemAvailable") is not None:
        return meminfo["MemAvailable"], "MemAvailable"
    if meminfo.get("MemFree") is not None:
        return (meminfo.get("MemFree", 0) + meminfo.get("Buffers", 0)
                + meminfo.get("Cached", 0)), "MemFree+Buffers+Cached"
    return None, None
