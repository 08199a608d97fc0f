"""What labctl keeps, as plain records, and which of it `prune` removes (pure: no I/O here).

Every kept thing is a :class:`CacheItem`: its kind, a name the user can type back (an image
tag, or a path relative to LABCTL_CACHE), its size on disk, whether it is *current* (what this
labctl would build or use today, by the key its builder names it with), *stale* (an older key,
an incomplete build, a suite no recipe uses) or *other* (labctl cannot tell: kept unless asked
for by name or ``--all``), and what uses it, if anything. An item in use is never removed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

CURRENT = "current"
STALE = "stale"
OTHER = "other"

#: the kinds, in the order `cache list` shows them
KINDS: tuple[str, ...] = (
    "lab-image",  # docker driver: labctl-host:<name>-<hash12> (docker/images.py)
    "engine-build-image",  # labctl-engine-build:<suite>-<hash12> (engines/buildimage.py)
    "vm-image",  # qemu driver: vm/<suite>-<hash12>/ (qemu/images.py)
    "cloud-image",  # cloud/<suite>-<hash12>/ (the test suite's stand-in cloud images)
    "engine",  # engines/docker-<version>-<commit7>/ (engines/store.py)
    "engine-source",  # engines/sources/: downloaded source archives
    "agent",  # agent/probe_agent-<hash12>.pyz (agentpack.py)
    "worker-wheels",  # worker-wheels/runner-<v>-core-<v>-py<v>-<machine>/ (workerenv.py)
    "debootstrap",  # debootstrap/<suite>/*.deb, debootstrap's package cache
    "build-log",  # logs/*.log
    "leftover",  # a build's temporary folder (in the cache, or a build tree in the temp folder)
)


@dataclass(frozen=True)
class CacheItem:
    kind: str
    #: what `cache list` shows and `cache prune NAME` accepts
    name: str
    size: int
    state: str
    #: why it is current, stale or other, in a few words
    why: str
    #: who uses it ("lab vms", "container labctl-lab-x-bookworm"); never removed while set
    in_use: str = ""
    #: the files or folders that make it (file kinds)
    paths: tuple[Path, ...] = field(default=(), repr=False)
    #: the image tag (Docker kinds) and the image's id (to tell when its last tag went)
    tag: str = ""
    image_id: str = ""
    #: a debootstrap build tree: removed by ``debootstrap.remove_tree`` (never across a mount)
    build_tree: bool = False


@dataclass(frozen=True)
class Decision:
    item: CacheItem
    remove: bool
    #: why it stays (empty when it goes)
    reason: str = ""


def default_remove(item: CacheItem) -> bool:
    """What a bare `labctl cache prune` removes: stale items nobody uses."""
    return item.state == STALE and not item.in_use


def plan(
    items: Sequence[CacheItem],
    *,
    everything: bool = False,
    kinds: Iterable[str] = (),
    names: Iterable[str] = (),
) -> list[Decision]:
    """What `prune` does with each item: stale ones go (``everything``: all of them; ``names``:
    exactly those; ``kinds``: only those kinds); an item in use always stays."""
    wanted_kinds = set(kinds)
    unknown_kinds = wanted_kinds - set(KINDS)
    if unknown_kinds:
        raise ConfigError(
            f"unknown cache kind {', '.join(sorted(unknown_kinds))}",
            hint=f"choose from {', '.join(KINDS)}",
        )
    wanted_names = list(dict.fromkeys(names))
    known = {i.name for i in items}
    missing = [n for n in wanted_names if n not in known]
    if missing:
        raise ConfigError(
            f"no cached item named {', '.join(missing)}",
            hint="`labctl cache list` shows the names",
        )
    out = []
    for item in items:
        if wanted_kinds and item.kind not in wanted_kinds:
            continue
        chosen = everything or item.state == STALE
        asked = item.name in wanted_names if wanted_names else chosen
        if not asked:
            continue
        if item.in_use:
            out.append(Decision(item, False, f"in use by {item.in_use}"))
        else:
            out.append(Decision(item, True))
    return out


def prune_column(item: CacheItem) -> str:
    """`cache list`'s PRUNE column: what a bare `prune` does with the item."""
    if item.in_use:
        return "keep (in use)"
    return "remove" if item.state == STALE else "keep"


def sort_items(items: Iterable[CacheItem]) -> list[CacheItem]:
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(items, key=lambda i: (order.get(i.kind, len(order)), i.name))


# --- sizes and names --------------------------------------------------------------------------


def human_size(n: int) -> str:
    """Decimal units, as `docker images` and `du -h --si` print them."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


HASH12 = re.compile(r"-([0-9a-f]{12})$")


def keyed_name(name: str) -> tuple[str, str] | None:
    """``bookworm-7f3f56515088`` -> (``bookworm``, ``7f3f56515088``): the folders and tags the
    builders name ``<name>-<recipe hash 12>``; None for any other name."""
    m = HASH12.search(name)
    return (name[: m.start()], m.group(1)) if m else None


def log_state(log_name: str, kept_hashes: set[str]) -> tuple[str, str]:
    """A build log (``vm-build-bookworm-7f3f56515088.log``) stays with what it built: stale
    once no kept item carries its recipe hash, other when its name carries none."""
    m = re.search(r"-([0-9a-f]{12})\.log$", log_name)
    if m is None:
        return OTHER, "names no recipe hash"
    if m.group(1) in kept_hashes:
        return CURRENT, f"the log of a kept build ({m.group(1)})"
    return STALE, f"the log of a build no longer kept ({m.group(1)})"


def table(items: Sequence[CacheItem]) -> str:
    """`labctl cache list`: one row per item, and what a bare `prune` would free."""
    header = ("KIND", "SIZE", "STATE", "PRUNE", "NAME", "WHY")
    rows = [header]
    for i in items:
        why = i.why + (f"; in use by {i.in_use}" if i.in_use else "")
        rows.append((i.kind, human_size(i.size), i.state, prune_column(i), i.name, why))
    widths = [max(len(r[c]) for r in rows) for c in range(len(header) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    )


def summary(items: Sequence[CacheItem]) -> str:
    total = sum(i.size for i in items)
    gone = [i for i in items if default_remove(i)]
    freed = sum(i.size for i in gone)
    line = f"{len(items)} items, {human_size(total)}; "
    if not gone:
        return line + "nothing stale to prune"
    return line + f"`labctl cache prune` would remove {len(gone)} stale, {human_size(freed)}"
