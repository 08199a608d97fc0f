"""`labctl cache list|prune`: everything labctl downloads or builds and keeps, and its removal.

``model`` holds the records and the pure rules (what is stale, what `prune` removes), ``files``
and ``images`` read the cache folder and the Docker engine, this module ties them together and
removes what a plan says.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import debootstrap
from ..errors import LabctlError
from ..paths import cache_dir, home_dir
from .files import file_items, log_items
from .images import image_items
from .model import STALE, CacheItem, Decision, plan, sort_items

__all__ = ["CacheItem", "Decision", "Inventory", "PruneReport", "gather", "plan", "prune"]


@dataclass(frozen=True)
class Inventory:
    items: list[CacheItem]
    #: why the Docker images are missing from ``items`` ("" when they are listed)
    no_engine: str = ""


def gather(
    *,
    client: Any = None,
    connect: Callable[[], Any] | None = None,
    cache: Path | None = None,
    home: Path | None = None,
) -> Inventory:
    """Everything kept: the cache folder, and the images on the engine when it answers."""
    items = file_items(cache or cache_dir(), home or home_dir())
    no_engine = ""
    if client is None and connect is not None:
        try:
            client = connect()
        except LabctlError as err:
            no_engine = err.line()
    if client is not None:
        items += image_items(client)
    kept = [i for i in items if i.state != STALE or i.in_use]
    items += log_items(cache or cache_dir(), kept)
    return Inventory(sort_items(items), no_engine)


@dataclass
class PruneReport:
    removed: list[CacheItem] = field(default_factory=list)
    kept: list[Decision] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    freed: int = 0


def _remove_path(path: Path, build_tree: bool = False) -> None:
    if build_tree:
        debootstrap.remove_tree(path)  # unmounts what a killed debootstrap left mounted inside
    elif path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _remove_image(client: Any, item: CacheItem) -> int:
    """Untag (and so remove, when it was the last tag) one image; bytes freed."""
    import docker.errors

    client.images.remove(item.tag)
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(item.image_id)
        return 0  # another tag still holds the image
    return item.size


def prune(
    decisions: Sequence[Decision], *, client: Any = None, dry_run: bool = False
) -> PruneReport:
    """Remove what ``decisions`` say (nothing with ``dry_run``); one problem line per failure."""
    report = PruneReport()
    for d in decisions:
        if not d.remove:
            report.kept.append(d)
            continue
        if dry_run:
            report.removed.append(d.item)
            report.freed += d.item.size
            continue
        try:
            if d.item.tag:
                if client is None:
                    raise OSError("the Docker engine is not answering")
                report.freed += _remove_image(client, d.item)
            else:
                for path in d.item.paths:
                    _remove_path(path, d.item.build_tree)
                report.freed += d.item.size
            report.removed.append(d.item)
        except Exception as exc:  # APIError (in use since listed), OSError
            why = getattr(exc, "explanation", None) or exc
            report.problems.append(f"{d.item.name}: not removed ({why})")
    return report
