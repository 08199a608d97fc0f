"""Built engines in the cache: one folder per version and commit, a binary and its manifest.

``<cache>/engines/docker-1.5.0-a8a31ef/{docker,manifest.json}``. A folder appears only whole
(built aside, then renamed), and an engine counts as built only if its binary still has the
sha256 its manifest says: the rest of labctl installs that file on lab hosts.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import write_json
from ..paths import cache_dir
from .source import sha256_file
from .versions import KNOWN_VERSIONS, known_version

MANIFEST = "manifest.json"
BINARY = "docker"


@dataclass(frozen=True)
class EngineBuild:
    """A built engine: install ``binary`` (check ``sha256``); ``manifest`` says how it was made."""

    version: str
    commit: str
    binary: Path
    sha256: str
    manifest: dict[str, Any]
    directory: Path

    @property
    def size(self) -> int:
        return int(self.manifest.get("binary_size", 0))


def engines_dir() -> Path:
    return cache_dir() / "engines"


def build_dir(version: str, commit: str) -> Path:
    return engines_dir() / f"docker-{version}-{commit[:7]}"


def load_build(directory: Path, *, verify: bool = True) -> EngineBuild | None:
    """The build in ``directory``, or None if it is missing, incomplete or altered."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    binary = directory / BINARY
    sha = manifest.get("binary_sha256")
    if not binary.is_file() or not isinstance(sha, str):
        return None
    if verify and sha256_file(binary) != sha:
        return None
    return EngineBuild(
        version=str(manifest.get("version", "")),
        commit=str(manifest.get("commit", "")),
        binary=binary,
        sha256=sha,
        manifest=manifest,
        directory=directory,
    )


def find_engine(version: str) -> EngineBuild | None:
    """The cached build of a known Docker version (binary checked by sha256), or None."""
    known = known_version(version)
    return load_build(build_dir(known.version, known.commit))


def require_engine(version: str) -> EngineBuild:
    """The cached build of ``version``; a ConfigError saying how to build it if there is none."""
    found = find_engine(version)
    if found is None:
        raise ConfigError(
            f"Docker {version} is not built yet",
            hint=f"run `labctl engine build {version} --source FILE`",
        )
    return found


def list_engines() -> list[EngineBuild]:
    """Every complete build in the cache (known versions and any other folder with a manifest)."""
    root = engines_dir()
    if not root.is_dir():
        return []
    builds = [
        b
        for d in sorted(root.iterdir())
        if d.is_dir() and d.name.startswith("docker-")
        for b in [load_build(d)]
        if b is not None
    ]
    order = {v: i for i, v in enumerate(KNOWN_VERSIONS)}
    return sorted(builds, key=lambda b: (order.get(b.version, len(order)), b.version))


def install_build(staging: Path, final: Path) -> None:
    """Move a finished build folder into place, replacing an older one (never half-written)."""
    old = final.with_name(f".{final.name}.old{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    try:
        os.replace(staging, final)
    except OSError:
        if old.exists() and not final.exists():
            os.replace(old, final)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    write_json(directory / MANIFEST, manifest, 0o644)


def engines_table(builds: list[EngineBuild]) -> str:
    """`labctl engine list`: one row per build."""
    header = ("VERSION", "COMMIT", "SHA256", "SIZE", "GO", "BUILT AT", "PATH")
    rows = [header]
    for b in builds:
        go = str(b.manifest.get("go", "")).split()
        rows.append(
            (
                b.version,
                b.commit[:7],
                b.sha256[:12],
                f"{b.size / 1e6:.1f} MB",
                go[2] if len(go) > 2 else "?",
                str(b.manifest.get("built_at", "?")),
                str(b.binary),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    )
