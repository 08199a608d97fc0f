"""What labctl keeps under LABCTL_CACHE, each kind judged by the key its own builder uses.

VM images (``vm/<suite>-<hash12>/``) are current when the folder is the one
``vm_recipe_for(suite).directory`` names and ``load_image`` finds it complete; engines when
``load_build`` verifies them and their manifest's inputs are the ``build_inputs`` that
``build_engine`` would compare; the agent when its name is ``build_agent``'s for today's
sources; a debootstrap cache when a recipe builds its suite (its superseded .debs are stale).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .. import agentpack, debootstrap, workerenv
from ..drivers.docker import images as labimages
from ..drivers.qemu import images as vmimages
from ..engines import build as enginebuild
from ..engines import buildimage, patchset, store, versions
from ..paths import cache_dir, home_dir
from . import debver
from .model import CURRENT, OTHER, STALE, CacheItem, keyed_name, log_state

#: where the cloud images of the test suite's ``tests/cloudbuild.py`` are cached
CLOUD_DIR = "cloud"


def disk_usage(path: Path) -> int:
    """Bytes allocated on disk under ``path`` (sparse files count what they use, as ``du``)."""
    try:
        st = path.lstat()
    except OSError:
        return 0
    total = st.st_blocks * 512
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                with contextlib.suppress(OSError):
                    total += (Path(root) / name).lstat().st_blocks * 512
    return total


def _rel(path: Path, cache: Path) -> str:
    return str(path.relative_to(cache))


def _item(kind: str, path: Path, cache: Path, state: str, why: str, **kw: Any) -> CacheItem:
    return CacheItem(kind, _rel(path, cache), disk_usage(path), state, why, paths=(path,), **kw)


# --- VM images --------------------------------------------------------------------------------


def vm_users(home: Path, proc: Path = Path("/proc")) -> dict[str, str]:
    """VM image folder -> who uses it: a lab of LABCTL_HOME whose lab.json names it (its VMs
    boot from overlays backed by the image), or a running process whose command line names a
    file in it (QEMU boots the image's kernel with ``-kernel``)."""
    users: dict[str, str] = {}
    for state_file in sorted((home / "labs").glob("*/lab.json")):
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
            hosts = state.get("hosts") or {}
        except (OSError, ValueError, AttributeError):
            continue
        for host, rec in hosts.items() if isinstance(hosts, dict) else ():
            image = rec.get("image") if isinstance(rec, dict) else None
            if isinstance(image, str):
                users.setdefault(_real(image), f"lab {state_file.parent.name} (host {host})")
    for pid, args in _cmdlines(proc):
        for arg in args:
            for word in re.split(r"[=,]", arg):
                if word.startswith("/"):
                    users.setdefault(
                        _real(str(Path(word).parent)), f"a running process (pid {pid})"
                    )
    return users


def _real(path: str | Path) -> str:
    return os.path.realpath(path)


def user_of(users: dict[str, str], path: Path) -> str:
    return users.get(_real(path), "")


def _cmdlines(proc: Path) -> Iterator[tuple[int, list[str]]]:
    for entry in proc.iterdir() if proc.is_dir() else ():
        if entry.name.isdigit():
            try:
                raw = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"qemu" in raw:
                yield int(entry.name), [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def vm_items(cache: Path, users: dict[str, str]) -> list[CacheItem]:
    root = cache / "vm"
    if not root.is_dir():
        return []
    current = {s: vmimages.vm_recipe_for(s) for s in vmimages.SUITES}
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        leftover = _leftover(d, cache)
        if leftover is not None:
            out.append(leftover)
            continue
        key = keyed_name(d.name)
        if key is None:
            out.append(_item("vm-image", d, cache, OTHER, "not named <suite>-<recipe hash>"))
            continue
        suite, short = key
        recipe = current.get(suite)
        if recipe is None:
            state, why = STALE, f"no recipe builds {suite} VM images any more"
        elif recipe.short_hash != short:
            state, why = STALE, f"an older {suite} recipe (today's: {recipe.short_hash})"
        elif vmimages.load_image(recipe) is None:
            state, why = STALE, "incomplete (no image.json, disk, kernel or initrd)"
        else:
            state, why = CURRENT, f"today's {suite} recipe"
        out.append(_item("vm-image", d, cache, state, why, in_use=user_of(users, d)))
    return out


def cloud_items(cache: Path, users: dict[str, str]) -> list[CacheItem]:
    """The test suite's stand-in cloud images: their recipe is not labctl's, so never stale."""
    root = cache / CLOUD_DIR
    if not root.is_dir():
        return []
    return [
        _item(
            "cloud-image",
            d,
            cache,
            OTHER,
            "built by tests/cloudbuild.py (no labctl recipe)",
            in_use=user_of(users, d),
        )
        for d in sorted(p for p in root.iterdir() if p.is_dir())
    ]


# --- engines, their sources, the agent -----------------------------------------------------------


def current_engine_inputs(version: str) -> dict[str, Any]:
    """The inputs ``build_engine`` compares a cached build's manifest with (build.py)."""
    known = versions.known_version(version)
    return enginebuild.build_inputs(
        known, patchset.load_patches(known.version), buildimage.build_image_recipe()
    )


def engine_items(cache: Path) -> list[CacheItem]:
    root = cache / "engines"
    if not root.is_dir():
        return []
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("docker-")):
        build = store.load_build(d)
        if build is None:
            state, why = STALE, "incomplete, or its binary no longer has its manifest's sha256"
        elif build.version not in versions.KNOWN_VERSIONS:
            state, why = STALE, f"Docker {build.version} is not a version labctl builds"
        elif d != store.build_dir(build.version, versions.KNOWN_VERSIONS[build.version].commit):
            state, why = STALE, f"not the folder of Docker {build.version}'s tag commit"
        elif build.manifest.get("inputs") != current_engine_inputs(build.version):
            state, why = STALE, "built from older inputs (patches, flags or build image)"
        else:
            state, why = CURRENT, f"Docker {build.version}, today's build inputs"
        out.append(_item("engine", d, cache, state, why))
    sources = root / "sources"
    if sources.is_dir():
        out += [
            _item("engine-source", f, cache, OTHER, "a downloaded source archive (reused)")
            for f in sorted(sources.iterdir())
            if f.is_file()
        ]
    return out


def agent_items(cache: Path) -> list[CacheItem]:
    root = cache / "agent"
    if not root.is_dir():
        return []
    today = agentpack.pyz_name(agentpack.source_hash(agentpack.agent_sources()))
    return [
        _item("agent", f, cache, CURRENT, "today's agent sources")
        if f.name == today
        else _item("agent", f, cache, STALE, "built from other agent sources")
        for f in sorted(root.glob("probe_agent-*.pyz"))
    ]


def worker_wheel_items(cache: Path) -> list[CacheItem]:
    """The wheelhouses made for worker nodes: current for this labctl's ansible versions."""
    root = cache / "worker-wheels"
    if not root.is_dir():
        return []
    today = workerenv.wheelhouse_prefix()
    return [
        _item("worker-wheels", d, cache, CURRENT, "this controller's ansible-runner and core")
        if d.name.startswith(today)
        else _item("worker-wheels", d, cache, STALE, "other ansible-runner or core versions")
        for d in sorted(p for p in root.iterdir() if p.is_dir())
    ]


# --- debootstrap's package caches ---------------------------------------------------------------


def built_suites() -> set[str]:
    """The suites some recipe debootstraps (lab images, VM images, the engine build image)."""
    return {*labimages.SUITES, *vmimages.SUITES, buildimage.SUITE}


def debootstrap_items(cache: Path) -> list[CacheItem]:
    root = cache / "debootstrap"
    if not root.is_dir():
        return []
    suites = built_suites()
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        leftover = _leftover(d, cache)
        if leftover is not None:
            out.append(leftover)
            continue
        if d.name not in suites:
            out.append(_item("debootstrap", d, cache, STALE, f"no recipe builds {d.name}"))
            continue
        debs = sorted(p.name for p in d.glob("*.deb"))
        old = set(debver.superseded(debs))
        keep = [d / n for n in debs if n not in old]
        out.append(
            CacheItem(
                "debootstrap",
                _rel(d, cache),
                sum(disk_usage(p) for p in keep),
                CURRENT,
                f"{len(keep)} packages, newest version of each",
                paths=tuple(keep),
            )
        )
        if old:
            paths = tuple(d / n for n in sorted(old))
            out.append(
                CacheItem(
                    "debootstrap",
                    f"{_rel(d, cache)}/superseded",
                    sum(disk_usage(p) for p in paths),
                    STALE,
                    f"{len(old)} .debs a newer version of the package supersedes",
                    paths=paths,
                )
            )
    return out


# --- leftovers and logs ---------------------------------------------------------------------------


_TMP_PID = re.compile(r"\.tmp(\d+)$")


def _leftover(path: Path, cache: Path) -> CacheItem | None:
    """A hidden build folder (``.bookworm-<hash>.tmp<pid>``, debootstrap's private
    ``.bookworm-XXXX`` copies): stale once the process that made it is gone; None otherwise."""
    if not path.name.startswith("."):
        return None
    m = _TMP_PID.search(path.name)
    if m is None:
        return _item("leftover", path, cache, OTHER, "a build's private folder (owner unknown)")
    pid = int(m.group(1))
    if debootstrap.process_alive(pid):
        return _item("leftover", path, cache, OTHER, f"a running build's (pid {pid})")
    return _item("leftover", path, cache, STALE, f"a build that ended (pid {pid} is gone)")


def engine_leftovers(cache: Path) -> list[CacheItem]:
    root = cache / "engines"
    if not root.is_dir():
        return []
    found = (_leftover(p, cache) for p in sorted(root.iterdir()) if p.is_dir())
    return [i for i in found if i is not None]


def orphan_build_trees() -> list[CacheItem]:
    """debootstrap trees in the temp folder whose build process is gone (``debootstrap``'s own
    rule; the next build removes them too). Named by their full path."""
    return [
        CacheItem(
            "leftover",
            str(p),
            disk_usage(p),
            STALE,
            "the tree of a build that ended",
            paths=(p,),
            build_tree=True,
        )
        for p in debootstrap.orphan_build_dirs()
    ]


def log_items(cache: Path, kept: Iterable[CacheItem]) -> list[CacheItem]:
    root = cache / "logs"
    if not root.is_dir():
        return []
    hashes = set()
    for item in kept:
        key = keyed_name(item.name.rsplit("/", 1)[-1].rsplit(":", 1)[-1])
        if key is not None:
            hashes.add(key[1])
    out = []
    for f in sorted(root.glob("*.log")):
        state, why = log_state(f.name, hashes)
        out.append(_item("build-log", f, cache, state, why))
    return out


def file_items(cache: Path | None = None, home: Path | None = None) -> list[CacheItem]:
    """Everything under LABCTL_CACHE except the logs (they follow the images: :func:`log_items`)."""
    cache = cache or cache_dir()
    users = vm_users(home or home_dir())
    items = [*vm_items(cache, users), *cloud_items(cache, users), *engine_items(cache)]
    items += [*engine_leftovers(cache), *agent_items(cache), *debootstrap_items(cache)]
    items += worker_wheel_items(cache)
    return [*items, *orphan_build_trees()]
