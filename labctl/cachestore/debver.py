"""Which .debs in debootstrap's package cache a newer version of the same package supersedes.

debootstrap names a cached package ``<name>_<version>_<arch>.deb`` (the epoch's colon written
``%3a``) and never removes one: each point release of a suite leaves the older .debs behind.
Versions are compared as dpkg does (``dpkg --compare-versions``; deb-version(7)).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cmp_to_key
from urllib.parse import unquote


def _order(c: str) -> int:
    if c == "":
        return 0
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    if c == "~":
        return -1
    return ord(c) + 256


def _compare_part(a: str, b: str) -> int:
    """dpkg's verrevcmp: non-digit runs by :func:`_order`, digit runs numerically."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i] if i < len(a) else "")
            bc = _order(b[j] if j < len(b) else "")
            if ac != bc:
                return -1 if ac < bc else 1
            i += 1
            j += 1
        i0, j0 = i, j
        while i < len(a) and a[i].isdigit():
            i += 1
        while j < len(b) and b[j].isdigit():
            j += 1
        na, nb = int(a[i0:i] or "0"), int(b[j0:j] or "0")
        if na != nb:
            return -1 if na < nb else 1
    return 0


def _split(version: str) -> tuple[int, str, str]:
    epoch, sep, rest = version.partition(":")
    if not sep:
        epoch, rest = "0", version
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    return (int(epoch) if epoch.isdigit() else 0), upstream, revision


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as Debian version ``a`` is lower than, equal to or higher than ``b``."""
    ea, ua, ra = _split(a)
    eb, ub, rb = _split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def parse_deb_name(filename: str) -> tuple[str, str, str] | None:
    """``bsdutils_1%3a2.38.1-5+deb12u3_amd64.deb`` -> (bsdutils, 1:2.38.1-5+deb12u3, amd64)."""
    if not filename.endswith(".deb"):
        return None
    parts = filename[: -len(".deb")].split("_")
    if len(parts) != 3 or not all(parts):
        return None
    name, version, arch = parts
    return name, unquote(version), arch


def _by_version(a: tuple[str, str], b: tuple[str, str]) -> int:
    return compare_versions(a[0], b[0])


def superseded(filenames: Iterable[str]) -> list[str]:
    """The .debs a newer version of the same package and architecture supersedes."""
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for fn in filenames:
        parsed = parse_deb_name(fn)
        if parsed is not None:
            name, version, arch = parsed
            groups.setdefault((name, arch), []).append((version, fn))
    out: list[str] = []
    for versions in groups.values():
        if len(versions) > 1:
            ranked = sorted(versions, key=cmp_to_key(_by_version))
            out.extend(fn for _v, fn in ranked[:-1])
    return sorted(out)
