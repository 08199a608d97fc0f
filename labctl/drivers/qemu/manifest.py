"""What a VM image was built from, and whether the Debian mirror has moved on since.

A recipe (``images.py``) does not cover the mirror: the same recipe built a month later installs
newer packages. So each image keeps ``manifest.json`` beside its disk: the mirror URL, the suite,
the suite's Release file fields (``Date``, ``Version``) as debootstrap fetched them, and the
``dpkg-query -W`` list (name -> version) of the built root. At ``labctl lab up`` the mirror's
current Release header (a few KB, one request per suite, short timeout) is compared with the
recorded one: a newer ``Date`` means the suite was republished (for a stable suite: a point
release, i.e. new package versions). An unreachable mirror never stops a lab: it is said, once.
"""

from __future__ import annotations

import email.utils
import json
import subprocess
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ... import debootstrap

MANIFEST = "manifest.json"
#: the packages whose versions the "mirror moved" line names (the image's kernel, init, sshd)
KEY_PACKAGES: tuple[str, ...] = ("linux-image-cloud-amd64", "systemd", "openssh-server")
#: the Release fields kept in the manifest
RELEASE_FIELDS: tuple[str, ...] = ("Suite", "Codename", "Version", "Date")
MIRROR_TIMEOUT = 5.0
#: bytes of the mirror's Release file read at `up` (its fields come first, then the hashes)
RELEASE_HEAD = 4096
DPKG_FORMAT = "${Package}\t${Version}\n"

#: (mirror, suite, timeout) -> the suite's current Release fields; OSError/ValueError when not
Fetch = Callable[[str, str, float], dict[str, str]]


# --- pure parts -------------------------------------------------------------------------------


def parse_dpkg_list(text: str) -> dict[str, str]:
    """``dpkg-query -W -f '${Package}\\t${Version}\\n'`` output as name -> version (packages
    known but not installed, with an empty version, are left out)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, version = line.partition("\t")
        if sep and name.strip() and version.strip():
            out[name.strip()] = version.strip()
    return dict(sorted(out.items()))


def parse_release(text: str) -> dict[str, str]:
    """The top-level fields of a Release or InRelease file (the signature's armor and the
    multi-line hash lists are skipped); only RELEASE_FIELDS are kept."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("-----BEGIN PGP SIGNATURE"):
            break
        if not line or line[0] in " \t" or ":" not in line:
            continue
        key, _, value = line.partition(":")
        if key in RELEASE_FIELDS and value.strip():
            fields.setdefault(key, value.strip())
    return fields


def release_time(date: str) -> datetime | None:
    """A Release ``Date`` (RFC 2822, UTC) as a datetime, None when it does not read as one."""
    try:
        parsed = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed


def key_versions(manifest: Mapping[str, Any]) -> str:
    """``linux-image-cloud-amd64 6.1.0-28, systemd 252.33-1, ...`` of a manifest."""
    packages = manifest.get("packages") or {}
    return ", ".join(f"{p} {packages[p]}" for p in KEY_PACKAGES if p in packages)


def mirror_verdict(
    manifest: Mapping[str, Any] | None, mirror: str, current: Mapping[str, str] | None, why: str
) -> str:
    """The one line `up` says about one suite's cached image (the progress line names the
    suite): ``mirror`` moved on, did not, or could not be checked (``current``: its Release
    fields now, None when they could not be read, ``why``)."""
    if manifest is None:
        return (
            "the cached image has no package manifest (built before labctl kept one): cannot "
            "tell whether the mirror moved on; `labctl lab up --refresh` rebuilds it"
        )
    built = dict(manifest.get("release") or {})
    then = release_time(built.get("Date", ""))
    if then is None:
        return "the image's manifest has no Release date: cannot tell whether the mirror moved on"
    if current is None:
        return (
            f"could not check whether {mirror} moved on since the image was built (Release of "
            f"{built['Date']}): {why}; going on with the cached image"
        )
    now = release_time(current.get("Date", ""))
    if now is None:
        return f"{mirror}'s Release has no readable Date: cannot tell whether it moved on"
    if now == then:
        return f"the image matches {mirror} (Release of {built['Date']})"
    version = f" {built['Version']} -> {current['Version']}," if (
        built.get("Version") and current.get("Version") and built["Version"] != current["Version"]
    ) else ""  # fmt: skip
    return (
        f"the Debian mirror has moved on since the image was built ({mirror}:{version} Release "
        f"of {built['Date']} -> {current['Date']}; the image has "
        f"{key_versions(manifest) or 'no key package versions'}): "
        "`labctl lab up --refresh` rebuilds it"
    )


# --- reading a built tree and the mirror ----------------------------------------------------


def tree_release(root: Path, suite: str) -> dict[str, str]:
    """The Release fields of ``suite`` that debootstrap fetched into the tree's apt lists
    (read before the lists are dropped); {} when they are not there."""
    lists = root / "var" / "lib" / "apt" / "lists"
    for pattern in (f"*_dists_{suite}_InRelease", f"*_dists_{suite}_Release"):
        for path in sorted(lists.glob(pattern)):
            fields = parse_release(path.read_text(errors="replace"))
            if fields:
                return fields
    return {}


def tree_packages(root: Path, *, timeout: float = 120.0) -> dict[str, str]:
    """``dpkg-query -W`` in the built tree (chrooted): name -> version; {} when it fails."""
    try:
        proc = subprocess.run(
            ["chroot", str(root), "dpkg-query", "-W", "-f", DPKG_FORMAT],
            capture_output=True, text=True, timeout=timeout, check=False,
            env=debootstrap.chroot_env(),
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return parse_dpkg_list(proc.stdout) if proc.returncode == 0 else {}


def tree_manifest(root: Path, *, mirror: str, suite: str) -> dict[str, Any]:
    """The manifest of a freshly debootstrapped tree."""
    return {
        "mirror": mirror,
        "suite": suite,
        "release": tree_release(root, suite),
        "packages": tree_packages(root),
    }


def write_manifest(directory: Path, manifest: Mapping[str, Any]) -> None:
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """An image folder's manifest, None when it has none (or an unreadable one)."""
    try:
        data = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def fetch_release(mirror: str, suite: str, timeout: float) -> dict[str, str]:
    """The head of ``mirror``'s Release file of ``suite``, parsed (OSError when unreachable)."""
    url = f"{mirror.rstrip('/')}/dists/{suite}/Release"
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        head = resp.read(RELEASE_HEAD).decode("utf-8", "replace")
    fields = parse_release(head)
    if "Date" not in fields:
        raise ValueError(f"{url} has no Date field")
    return fields


def mirror_lines(
    images: Iterable[tuple[str, Path]], *, mirror: str | None = None, fetch: Fetch = fetch_release,
    timeout: float = MIRROR_TIMEOUT,
) -> list[tuple[str, str]]:  # fmt: skip
    """(suite, line) per cached image (suite, folder): has ``mirror`` (the one a rebuild would
    use; None: the one each image was built from) moved on? A mirror that cannot be reached is
    not asked again (a lab never waits on it for long)."""
    out: list[tuple[str, str]] = []
    unreachable: dict[str, str] = {}
    for suite, directory in images:
        manifest = read_manifest(directory)
        current: dict[str, str] | None = None
        url = mirror or str((manifest or {}).get("mirror", ""))
        why = unreachable.get(url, "")
        if manifest is not None and (manifest.get("release") or {}).get("Date") and not why:
            try:
                current = fetch(url, suite, timeout)
            except (OSError, ValueError) as exc:
                why = str(getattr(exc, "reason", "") or exc)[:200] or type(exc).__name__
                unreachable[url] = why
        out.append((suite, mirror_verdict(manifest, url, current, why)))
    return out
