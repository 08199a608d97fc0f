"""The build environment: a local Docker image made only of Debian packages.

The controller's own OS must not matter, so engines are built in an image debootstrapped from a
Debian mirror (bookworm: Go 1.19 and GCC 12 build 2015 sources with few patches) plus a static
libdevmapper built from Debian's lvm2 source package (Debian ships none). It is built once and
cached like the lab images: tagged by a hash of its recipe, so a recipe change means a rebuild.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from labctl.drivers import images
from labctl.engines.locks import file_lock
from labctl.errors import LabError
from labctl.paths import cache_dir

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

Progress = Callable[[str, str], None]


def scripts_dir() -> Path:
    return Path(__file__).resolve().parent / "scripts"


@dataclass(frozen=True)
class BuildImageRecipe:
    suite: str
    packages: tuple[str, ...]
    files: Mapping[str, bytes] = field(repr=False)
    version: int = RECIPE_VERSION

    @property
    def digest(self) -> str:
        return images.recipe_digest(
            {
                "kind": "engine-build",
                "version": self.version,
                "suite": self.suite,
                "variant": "minbase",
                "packages": sorted(self.packages),
                "changes": list(CHANGES),
                "files": {k: IMAGE_FILES.get(k, "") for k in sorted(self.files)},
            },
            self.files,
        )

    @property
    def short_hash(self) -> str:
        return self.digest[:12]

    @property
    def tag(self) -> str:
        return f"{IMAGE_REPOSITORY}:{self.suite}-{self.short_hash}"

    @property
    def log_path(self) -> Path:
        return cache_dir() / "logs" / f"engine-build-image-{self.suite}-{self.short_hash}.log"


def build_image_recipe(files: Mapping[str, bytes] | None = None) -> BuildImageRecipe:
    if files is None:
        files = images.read_image_files(scripts_dir(), IMAGE_FILES, what="engine build image")
    return BuildImageRecipe(suite=SUITE, packages=PACKAGES, files=dict(files))


def _run(cmd: list[str], log: IO[bytes], *, timeout: float, what: str, log_path: Path) -> None:
    log.write(("$ " + " ".join(cmd) + "\n").encode())
    log.flush()
    env = dict(os.environ, LC_ALL="C", LANG="C", DEBIAN_FRONTEND="noninteractive")
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    try:
        rc = subprocess.run(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout, check=False
        ).returncode
    except subprocess.TimeoutExpired:
        rc = -1
    if rc != 0:
        raise LabError(
            f"building the engine build image failed: {what} "
            + ("timed out" if rc == -1 else f"exit {rc}"),
            hint=f"see {log_path}",
        )


def _customize(root: Path, recipe: BuildImageRecipe, mirror: str) -> None:
    (root / "etc" / "apt" / "sources.list").write_text(
        f"deb {mirror} {recipe.suite} main\ndeb-src {mirror} {recipe.suite} main\n"
    )
    for name, dest in IMAGE_FILES.items():
        target = root / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(recipe.files[name])
        target.chmod(0o755)


def _finish(root: Path, recipe: BuildImageRecipe, mirror: str) -> None:
    (root / "etc" / "labctl").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "labctl" / "image.json").write_text(
        json.dumps(
            {
                "kind": "engine-build",
                "suite": recipe.suite,
                "recipe": recipe.digest,
                "packages": list(recipe.packages),
                "mirror": mirror,
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=2,
        )
        + "\n"
    )
    images.drop_apt_downloads(root)
    for sub in ("var/log/bootstrap.log", "var/cache/apt/pkgcache.bin",
                "var/cache/apt/srcpkgcache.bin"):  # fmt: skip
        (root / sub).unlink(missing_ok=True)


def _import(client: Any, root: Path, recipe: BuildImageRecipe, log: IO[bytes]) -> None:
    repo, tag = recipe.tag.split(":", 1)
    changes = [*CHANGES, f"LABEL labctl.recipe={recipe.short_hash} labctl.kind=engine-build"]
    cmd = [
        "tar", "--numeric-owner", "--one-file-system", "-C", str(root), "-cf", "-",
        "--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./dev/*", "--exclude=./run/*",
        "--exclude=./tmp/*", "--exclude=./debootstrap", ".",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log)
    assert proc.stdout is not None
    try:
        result = client.api.import_image_from_stream(
            proc.stdout, repository=repo, tag=tag, changes=changes
        )
    except BaseException:
        proc.kill()
        raise
    finally:
        proc.stdout.close()
        rc = proc.wait()
    text = result if isinstance(result, str) else json.dumps(result)
    log.write(f"\n--- docker import: {text.strip()}\n".encode())
    if rc != 0 or "errorDetail" in text or '"error"' in text:
        raise LabError(
            f"importing the engine build image failed (tar exit {rc}): {text.strip()[:200]}",
            hint=f"see {recipe.log_path}",
        )


def ensure_build_image(
    client: Any,
    recipe: BuildImageRecipe,
    *,
    mirror: str | Callable[[], str],
    progress: Progress | None = None,
) -> str:
    """The tag of the build image, built first if missing (under a lock between processes)."""
    say = progress or (lambda _h, _m: None)
    if images.image_exists(client, recipe.tag):
        return recipe.tag
    with file_lock(cache_dir() / "engines" / f".lock-image-{recipe.short_hash}"):
        if images.image_exists(client, recipe.tag):
            return recipe.tag
        images.check_build_prerequisites()
        url = mirror() if callable(mirror) else mirror
        shared = images.debootstrap_cache(recipe.suite)
        shared.mkdir(parents=True, exist_ok=True)
        log_path = recipe.log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{images.BUILD_DIR_PREFIX}engine-"))
        root = tmp / "root"
        started = time.monotonic()
        try:
            with log_path.open("wb") as log:
                say("engine", f"building the build image {recipe.tag} (debootstrap from {url})")
                cmd = [
                    "debootstrap", "--variant=minbase", f"--cache-dir={shared}",
                    "--components=main", "--include=" + ",".join(recipe.packages),
                    recipe.suite, str(root), url,
                ]  # fmt: skip
                try:
                    _run(cmd, log, timeout=BUILD_TIMEOUT, what="debootstrap", log_path=log_path)
                except LabError:
                    inner = root / "debootstrap" / "debootstrap.log"
                    if inner.is_file():
                        log.write(b"\n--- debootstrap/debootstrap.log\n" + inner.read_bytes())
                    raise
                for mp in images.mounts_under(root):
                    subprocess.run(["umount", "-l", mp], capture_output=True, check=False)
                _customize(root, recipe, url)
                say("engine", "building a static libdevmapper from Debian's lvm2 source")
                _run(
                    ["chroot", str(root), IMAGE_FILES["build-libdevmapper.sh"]], log,
                    timeout=LIBDEVMAPPER_TIMEOUT, what="static libdevmapper", log_path=log_path,
                )  # fmt: skip
                _finish(root, recipe, url)
                say("engine", "importing the build image")
                _import(client, root, recipe, log)
            say("engine", f"built {recipe.tag} in {time.monotonic() - started:.0f} s")
            prune_stale(client, recipe, progress=progress)
            return recipe.tag
        finally:
            images.remove_tree(tmp)


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
