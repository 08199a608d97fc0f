"""The patches that let an old engine's source build with today's Debian toolchain.

They live in ``patches/<version>/`` with a ``series`` file listing them in order, one line
each: the patch's file name and why it is needed. The manifest records each patch's sha256.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError


@dataclass(frozen=True)
class Patch:
    name: str
    reason: str
    sha256: str
    path: Path

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "reason": self.reason, "sha256": self.sha256}


def patches_root() -> Path:
    return Path(__file__).resolve().parent / "patches"


def patches_dir(version: str) -> Path:
    return patches_root() / version


def parse_series(text: str) -> list[tuple[str, str]]:
    """(file name, reason) per non-comment line of a series file."""
    entries: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        entries.append((name, reason.strip()))
    return entries


def load_patches(version: str, base: Path | None = None) -> list[Patch]:
    """The version's patches in order; a series entry without its file or reason is an error."""
    folder = base if base is not None else patches_dir(version)
    series = folder / "series"
    if not series.is_file():
        return []
    patches: list[Patch] = []
    for name, reason in parse_series(series.read_text(encoding="utf-8")):
        path = folder / name
        if not reason:
            raise ConfigError(f"{series}: the patch {name} has no reason", hint="reinstall labctl")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"the patch {path} listed in {series} is missing ({exc.strerror})",
                hint="reinstall labctl",
            ) from exc
        patches.append(Patch(name, reason, hashlib.sha256(data).hexdigest(), path))
    return patches
