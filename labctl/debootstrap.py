"""What every locally built Debian image shares: the recipe, debootstrap, the mirror, the tree.

Three kinds of images are built here from Debian packages alone: the docker driver's lab host
images (``docker/images.py``), the qemu driver's VM disks (``qemu/images.py``) and the engine
build image (``labctl/engines/buildimage.py``). Each is defined by a recipe (an
``ImageRecipe``): its suite, packages, baked-in files and build settings, hashed into a digest
that names the cached image, so a cached image with the name is the cache and a recipe change
means a rebuild. The Debian mirror is not part of a recipe.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

from .errors import ConfigError, LabError
from .paths import cache_dir

BUILD_DIR_PREFIX = "labctl-build-"
MIRROR_ENV = "LABCTL_DEBIAN_MIRROR"
#: PATH inside a build chroot
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: what a built tree does not need besides apt's downloads (apt rebuilds its caches when used)
APT_LEFTOVERS = ("var/log/bootstrap.log", "var/cache/apt/pkgcache.bin",
                 "var/cache/apt/srcpkgcache.bin")  # fmt: skip


def recipe_digest(spec: dict[str, Any], files: Mapping[str, bytes]) -> str:
    """sha256 over everything that defines an image: its settings and the files baked in."""
    h = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    for name in sorted(files):
        h.update(b"\0" + name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


@dataclass(frozen=True)
class ImageRecipe:
    """Everything that defines one image (the mirror does not): hashed into ``digest``.

    A kind of image says what else defines it in ``settings()`` (besides the files baked in);
    ``repository`` names the Docker images of kinds that are tagged (``<repository>:<name>-<short
    hash>``)."""

    suite: str
    packages: tuple[str, ...]
    files: Mapping[str, bytes] = field(repr=False)

    repository: ClassVar[str] = ""

    def settings(self) -> dict[str, Any]:
        """What defines the image besides its files (hashed with them)."""
        raise NotImplementedError

    def common_settings(self, version: int, kind: str | None = None) -> dict[str, Any]:
        """The settings every kind shares: its recipe version (and kind), the suite, the
        debootstrap variant and the packages."""
        common = {"version": version, "suite": self.suite, "variant": "minbase"}
        common["packages"] = sorted(self.packages)
        return common if kind is None else {"kind": kind, **common}

    @property
    def digest(self) -> str:
        return recipe_digest(self.settings(), self.files)

    @property
    def short_hash(self) -> str:
        return self.digest[:12]

    @property
    def name(self) -> str:
        return self.suite

    @property
    def tag(self) -> str:
        return f"{self.repository}:{self.name}-{self.short_hash}"


def read_image_files(
    base: Path, names: Iterable[str], what: str = "lab host image"
) -> dict[str, bytes]:
    """The files baked into an image, by name; a missing one is a LabError."""
    files: dict[str, bytes] = {}
    for name in names:
        path = base / name
        try:
            files[name] = path.read_bytes()
        except OSError as exc:
            raise LabError(
                f"the {what} file {path} is missing ({exc.strerror})",
                hint="reinstall labctl",
            ) from exc
    return files


def drop_apt_downloads(root: Path) -> None:
    """Remove the package lists and .debs debootstrap left in an image tree (not needed, large)."""
    for sub in ("var/lib/apt/lists", "var/cache/apt/archives"):
        d = root / sub
        if d.is_dir():
            for entry in d.iterdir():
                if entry.is_file() and entry.name != "lock":
                    entry.unlink()


# --- mirror detection -------------------------------------------------------------------------


def _uris_from_one_line(text: str) -> list[str]:
    uris: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] != "deb":
            continue
        rest = words[1:]
        if rest and rest[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while rest and not rest[0].endswith("]"):
                rest = rest[1:]
            rest = rest[1:]
        if rest:
            uris.append(rest[0])
    return uris


def _uris_from_deb822(text: str) -> list[str]:
    uris: list[str] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for raw in stanza.splitlines():
            if raw.lstrip().startswith("#"):
                continue
            if raw[:1] in (" ", "\t") and key:
                fields[key] += " " + raw.strip()
                continue
            if ":" in raw:
                key, value = raw.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in fields.get("types", "").split():
            continue
        uris.extend(fields.get("uris", "").split())
    return uris


def _is_debian_mirror(uri: str) -> bool:
    return bool(re.match(r"^https?://", uri)) and uri.rstrip("/").endswith("/debian")


def detect_mirror(
    *,
    environ: Mapping[str, str] | None = None,
    sources_list: Path = Path("/etc/apt/sources.list"),
    sources_dir: Path = Path("/etc/apt/sources.list.d"),
) -> str:
    """The Debian mirror to debootstrap from.

    ``LABCTL_DEBIAN_MIRROR`` wins; otherwise the first ``deb`` URI whose path ends in ``/debian``
    in the controller's apt sources (``sources.list``, then ``sources.list.d/*.list`` and deb822
    ``*.sources`` in name order).
    """
    env = os.environ if environ is None else environ
    override = env.get(MIRROR_ENV, "").strip()
    if override:
        if not re.match(r"^https?://\S+$", override):
            raise ConfigError(f"{MIRROR_ENV}={override!r} is not an http(s) URL")
        return override.rstrip("/")
    candidates: list[Path] = [sources_list]
    if sources_dir.is_dir():
        candidates += sorted(p for p in sources_dir.iterdir() if p.suffix in (".list", ".sources"))
    for path in candidates:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        uris = _uris_from_deb822(text) if path.suffix == ".sources" else _uris_from_one_line(text)
        for uri in uris:
            if _is_debian_mirror(uri):
                return uri.rstrip("/")
    raise ConfigError(
        f"no Debian mirror found in {sources_list} or {sources_dir}/*.sources",
        hint=f"set {MIRROR_ENV} (e.g. http://deb.debian.org/debian) or the lab's mirror option",
    )


# --- building ---------------------------------------------------------------------------------


def debootstrap_cache(suite: str) -> Path:
    """debootstrap's package cache of a suite, shared by every kind of image."""
    return cache_dir() / "debootstrap" / suite


def debootstrap_command(recipe: ImageRecipe, root: Path, cache: Path, mirror: str) -> list[str]:
    return [
        "debootstrap", "--variant=minbase", f"--cache-dir={cache}",
        "--components=main", "--include=" + ",".join(recipe.packages),
        recipe.suite, str(root), mirror,
    ]  # fmt: skip


def chroot_env() -> dict[str, str]:
    """The environment of build commands: C locale, no questions, the chroot's PATH."""
    env = dict(os.environ, LC_ALL="C", LANG="C", DEBIAN_FRONTEND="noninteractive")
    env["PATH"] = CHROOT_PATH
    return env


def run_logged(
    cmd: list[str], log: IO[bytes], *, timeout: float, what: str, image: str, log_path: Path,
    host: str | None = None,
) -> None:  # fmt: skip
    """Run one build step into the build log; a LabError names ``image`` and the step."""
    log.write(("$ " + " ".join(cmd) + "\n").encode())
    log.flush()
    try:
        rc = subprocess.run(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=chroot_env(), timeout=timeout,
            check=False,
        ).returncode  # fmt: skip
    except subprocess.TimeoutExpired:
        rc = -1
    if rc != 0:
        raise LabError(
            f"building the {image} failed: {what} " + ("timed out" if rc == -1 else f"exit {rc}"),
            host=host,
            hint=f"see {log_path}",
        )


def run_debootstrap(
    recipe: ImageRecipe, root: Path, cache: Path, mirror: str, log: IO[bytes], *, image: str,
    log_path: Path, timeout: float, host: str | None = None,
) -> None:  # fmt: skip
    """debootstrap a recipe's packages into ``root`` (its own log joins ours when it fails: the
    tree goes), then unmount whatever it left mounted."""
    cmd = debootstrap_command(recipe, root, cache, mirror)
    try:
        run_logged(cmd, log, timeout=timeout, what="debootstrap", image=image, log_path=log_path,
                   host=host)  # fmt: skip
    except LabError:
        inner = root / "debootstrap" / "debootstrap.log"
        if inner.is_file():
            log.write(b"\n--- debootstrap/debootstrap.log\n" + inner.read_bytes())
        raise
    unmount_below(root)


def install_files(
    root: Path, files: Mapping[str, bytes], places: Mapping[str, tuple[str, int]]
) -> None:
    """Bake files into an image tree: name -> (path in the image, mode)."""
    for name, (dest, mode) in places.items():
        target = root / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[name])
        target.chmod(mode)


def finish_tree(root: Path, info: Mapping[str, Any], leftovers: Iterable[str] = ()) -> None:
    """Write ``/etc/labctl/image.json`` (what the image was built from, and when), then drop the
    apt downloads and the ``leftovers`` (paths in the tree) an image does not need."""
    built = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (root / "etc" / "labctl").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "labctl" / "image.json").write_text(
        json.dumps({**info, "built": built}, indent=2) + "\n"
    )
    drop_apt_downloads(root)
    for sub in leftovers:
        (root / sub).unlink(missing_ok=True)


def check_build_prerequisites() -> None:
    if shutil.which("debootstrap") is None:
        raise LabError(
            "debootstrap is not installed; it builds the lab host images",
            hint="install it (`apt-get install debootstrap`)",
        )
    if os.geteuid() != 0:
        raise LabError(
            "building lab host images needs root (debootstrap makes device nodes and chroots)",
            hint="run labctl as root, or build once as root and reuse the cached images",
        )


def image_exists(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root`` (deepest first)."""
    prefix = str(root.resolve())
    found: list[str] = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split()
        if len(parts) < 5:
            continue
        mp = parts[4].replace("\\040", " ")
        if mp == prefix or mp.startswith(prefix + "/"):
            found.append(mp)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def unmount_below(root: Path) -> None:
    """Lazily unmount what a build left mounted in its tree (before it is packed or removed)."""
    for mp in mounts_under(root):
        subprocess.run(["umount", "-l", mp], capture_output=True, check=False)


def build_dir_pid(path: Path) -> int | None:
    """The process that made a build folder (``labctl-build-KIND-PID-XXXXXXXX``), if named so."""
    if not path.name.startswith(BUILD_DIR_PREFIX):
        return None
    parts = path.name.rsplit("-", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` lives (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orphan_build_dirs() -> list[Path]:
    """This user's build folders whose process is gone (killed, or the machine restarted).

    A build removes its folder on every path it lives through; only SIGKILL or a restart leave
    one, and nothing but the next build would ever look at it.
    """
    found = []
    for path in Path(tempfile.gettempdir()).glob(f"{BUILD_DIR_PREFIX}*"):
        pid = build_dir_pid(path)
        try:
            mine = path.lstat().st_uid == os.getuid()
        except OSError:
            continue
        if mine and pid is not None and pid != os.getpid() and not process_alive(pid):
            found.append(path)
    return sorted(found)


def new_build_dir(kind: str) -> Path:
    """A fresh build folder named after this process, once orphaned ones are removed."""
    for orphan in orphan_build_dirs():
        with contextlib.suppress(LabError):  # still mounted: left for the user to see
            remove_tree(orphan)
    return Path(tempfile.mkdtemp(prefix=f"{BUILD_DIR_PREFIX}{kind}-{os.getpid()}-"))


def remove_tree(path: Path) -> None:
    """Remove a build tree: unmount anything debootstrap left mounted inside, never cross mounts."""
    if not path.exists():
        return
    for mp in mounts_under(path):
        subprocess.run(["umount", mp], capture_output=True, check=False)
    left = mounts_under(path)
    for mp in left:
        subprocess.run(["umount", "-l", mp], capture_output=True, check=False)
    left = mounts_under(path)
    if left:
        raise LabError(
            f"cannot remove the build folder {path}: still mounted: {', '.join(left)}",
            hint="unmount them by hand, then remove the folder",
        )
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():  # e.g. immutable files: let rm say why
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def import_tree(client: Any, root: Path, image_tag: str, changes: list[str], log: Any) -> None:
    """``tar`` of an image tree into ``docker import`` (no registry); RuntimeError on failure."""
    repo, tag = image_tag.split(":", 1)
    cmd = [
        "tar", "--numeric-owner", "--one-file-system", "-C", str(root), "-cf", "-",
        "--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./dev/*", "--exclude=./run/*",
        "--exclude=./tmp/*", "--exclude=./debootstrap",
        ".",
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
    if rc != 0:
        raise RuntimeError(f"tar exited with {rc}")
    if "errorDetail" in text or '"error"' in text:
        raise RuntimeError(f"docker import failed: {text.strip()[:300]}")
