"""The build environment: a local Docker image made only of Debian packages.

The controller's own OS must not matter, so engines are built in an image debootstrapped from a
Debian mirror (bookworm: Go 1.19 and GCC 12 build 2015 sources with few patches) plus a static
libdevmapper built from Debian's lvm2 source package (Debian ships none). It is built once and
cached like the lab images: tagged by a hash of its recipe, so a recipe change means a rebuild.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

from .. import debootstrap
from ..errors import LabError
from ..hosts import Progress
from ..locks import file_lock
from ..paths import cache_dir

IMAGE_REPOSITORY = "labctl-engine-build"
#: bump when the build steps change in a way the packages and files do not show
RECIPE_VERSION = 1
SUITE = "bookworm"
GO_ROOT = "/usr/lib/go-1.19"
PACKAGES: tuple[str, ...] = (
    "golang-1.19-go",
    "gcc",
    "libc6-dev",
    "make",
    "pkg-config",
    "patch",
    "file",
    "dpkg-dev",  # apt-get source unpacks with dpkg-source
    "libaio-dev",  # lvm2's configure requires it even for device-mapper only
    "libsqlite3-dev",  # the graph database's cgo sqlite binding (static libsqlite3.a)
)
#: scripts/ files baked into the image: name -> path in the image
IMAGE_FILES: dict[str, str] = {
    "build-libdevmapper.sh": "/usr/local/sbin/labctl-build-libdevmapper",
}
CHANGES: tuple[str, ...] = (
    f"ENV PATH={GO_ROOT}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["/bin/sh"]',
)
BUILD_TIMEOUT = 1800.0
LIBDEVMAPPER_TIMEOUT = 1200.0


def scripts_dir() -> Path:
    return Path(__file__).resolve().parent / "scripts"


@dataclass(frozen=True)
class BuildImageRecipe(debootstrap.ImageRecipe):
    version: int = RECIPE_VERSION

    repository: ClassVar[str] = IMAGE_REPOSITORY

    def settings(self) -> dict[str, Any]:
        return {
            **self.common_settings(self.version, "engine-build"),
            "changes": list(CHANGES),
            "files": {k: IMAGE_FILES.get(k, "") for k in sorted(self.files)},
        }

    @property
    def log_path(self) -> Path:
        return cache_dir() / "logs" / f"engine-build-image-{self.suite}-{self.short_hash}.log"


def build_image_recipe(files: Mapping[str, bytes] | None = None) -> BuildImageRecipe:
    if files is None:
        files = debootstrap.read_image_files(scripts_dir(), IMAGE_FILES, what="engine build image")
    return BuildImageRecipe(suite=SUITE, packages=PACKAGES, files=dict(files))


def _run(cmd: list[str], log: IO[bytes], *, timeout: float, what: str, log_path: Path) -> None:
    debootstrap.run_logged(
        cmd, log, timeout=timeout, what=what, image="engine build image", log_path=log_path
    )


def _customize(root: Path, recipe: BuildImageRecipe, mirror: str) -> None:
    (root / "etc" / "apt" / "sources.list").write_text(
        f"deb {mirror} {recipe.suite} main\ndeb-src {mirror} {recipe.suite} main\n"
    )
    places = {name: (dest, 0o755) for name, dest in IMAGE_FILES.items()}
    debootstrap.install_files(root, recipe.files, places)


def _finish(root: Path, recipe: BuildImageRecipe, mirror: str) -> None:
    info = {
        "kind": "engine-build",
        "suite": recipe.suite,
        "recipe": recipe.digest,
        "packages": list(recipe.packages),
        "mirror": mirror,
    }
    debootstrap.finish_tree(root, info, debootstrap.APT_LEFTOVERS)


def ensure_build_image(
    client: Any,
    recipe: BuildImageRecipe,
    *,
    mirror: str | Callable[[], str],
    progress: Progress | None = None,
) -> str:
    """The tag of the build image, built first if missing (under a lock between processes)."""
    say = progress or (lambda _h, _m: None)
    if debootstrap.image_exists(client, recipe.tag):
        return recipe.tag
    with file_lock(cache_dir() / "engines" / f".lock-image-{recipe.short_hash}"):
        if debootstrap.image_exists(client, recipe.tag):
            return recipe.tag
        debootstrap.check_build_prerequisites()
        url = mirror() if callable(mirror) else mirror
        shared = debootstrap.debootstrap_cache(recipe.suite)
        shared.mkdir(parents=True, exist_ok=True)
        log_path = recipe.log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = debootstrap.new_build_dir("engine")
        root = tmp / "root"
        started = time.monotonic()
        try:
            with log_path.open("wb") as log:
                say("engine", f"building the build image {recipe.tag} (debootstrap from {url})")
                debootstrap.run_debootstrap(
                    recipe, root, shared, url, log, image="engine build image",
                    log_path=log_path, timeout=BUILD_TIMEOUT,
                )  # fmt: skip
                _customize(root, recipe, url)
                say("engine", "building a static libdevmapper from Debian's lvm2 source")
                _run(
                    ["chroot", str(root), IMAGE_FILES["build-libdevmapper.sh"]], log,
                    timeout=LIBDEVMAPPER_TIMEOUT, what="static libdevmapper", log_path=log_path,
                )  # fmt: skip
                _finish(root, recipe, url)
                say("engine", "importing the build image")
                changes = [
                    *CHANGES,
                    f"LABEL labctl.recipe={recipe.short_hash} labctl.kind=engine-build",
                ]
                try:
                    debootstrap.import_tree(client, root, recipe.tag, changes, log)
                except Exception as exc:
                    why = getattr(exc, "explanation", None) or exc
                    raise LabError(
                        f"importing the engine build image failed: {why}", hint=f"see {log_path}"
                    ) from exc
            say("engine", f"built {recipe.tag} in {time.monotonic() - started:.0f} s")
            prune_stale(client, recipe, progress=progress)
            return recipe.tag
        finally:
            debootstrap.remove_tree(tmp)


def prune_stale(client: Any, recipe: BuildImageRecipe, *, progress: Progress | None = None) -> None:
    """Remove build images of older recipes (~850 MB each); one still in use is kept."""
    import docker.errors

    for image in client.images.list(name=IMAGE_REPOSITORY):
        for tag in image.tags:
            if tag != recipe.tag and tag.startswith(f"{IMAGE_REPOSITORY}:{recipe.suite}-"):
                with contextlib.suppress(docker.errors.APIError):
                    client.images.remove(tag)
                    if progress is not None:
                        progress("engine", f"removed the outdated build image {tag}")
