"""The qemu images' freshness, pure parts: the manifest (dpkg list, Release fields), the "mirror
moved on" line, `--refresh` wiring, and a build whose boot check fails caching nothing."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from labctl import debootstrap
from labctl.drivers.qemu import QemuLab, QemuLabSpec
from labctl.drivers.qemu import images as vmimages
from labctl.drivers.qemu import manifest as vmmanifest
from labctl.errors import ConfigError, LabError

INRELEASE = """-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA512

Origin: Debian
Label: Debian
Suite: oldstable
Version: 12.15
Codename: bookworm
Changelogs: https://metadata.ftp-master.debian.org/changelogs/@CHANGEPATH@_changelog
Date: Sat, 11 Jul 2026 10:16:37 UTC
Architectures: all amd64 arm64
Components: main contrib non-free-firmware non-free
Description: Debian 12.15 Released 11 July 2026
MD5Sum:
 0ed6d4c8891eb86358b94bb35d9e4da4  1484322 contrib/Contents-all
Date: not the top-level one
-----BEGIN PGP SIGNATURE-----

iQIzBAEBCgAdFiEE
"""
M = "http://mirror.example/debian"
OLD = "Sat, 11 Jul 2026 10:16:37 UTC"
NEW = "Sat, 05 Sep 2026 10:11:02 UTC"


def _manifest(date: str = OLD, version: str = "12.15") -> dict[str, object]:
    return {
        "mirror": "http://mirror.example/debian",
        "suite": "bookworm",
        "release": {"Suite": "oldstable", "Codename": "bookworm", "Version": version,
                    "Date": date},
        "packages": {"linux-image-cloud-amd64": "6.1.140-1", "systemd": "252.38-1~deb12u1",
                     "openssh-server": "1:9.2p1-2+deb12u6", "zlib1g": "1:1.2.13"},
    }  # fmt: skip


def test_dpkg_list_is_name_to_version_of_installed_packages() -> None:
    text = "zlib1g\t1:1.2.13.dfsg-1\nadduser\t3.134\nnot-installed\t\n\nbroken line\n"
    assert vmmanifest.parse_dpkg_list(text) == {"adduser": "3.134", "zlib1g": "1:1.2.13.dfsg-1"}


def test_release_fields_come_from_the_top_of_an_inrelease() -> None:
    assert vmmanifest.parse_release(INRELEASE) == {
        "Suite": "oldstable", "Version": "12.15", "Codename": "bookworm", "Date": OLD,
    }  # fmt: skip
    plain = INRELEASE.split("\n\n", 1)[1]  # a Release file: no armor
    assert vmmanifest.parse_release(plain)["Date"] == OLD
    assert vmmanifest.parse_release("garbage\n") == {}


def test_tree_release_reads_the_suite_debootstrap_fetched(tmp_path: Path) -> None:
    lists = tmp_path / "var/lib/apt/lists"
    lists.mkdir(parents=True)
    (lists / "m_debian_dists_bookworm-updates_InRelease").write_text("Date: wrong\n")
    assert vmmanifest.tree_release(tmp_path, "bookworm") == {}
    (lists / "m_debian_dists_bookworm_InRelease").write_text(INRELEASE)
    assert vmmanifest.tree_release(tmp_path, "bookworm")["Version"] == "12.15"


def test_mirror_moved_on_names_both_dates_the_key_versions_and_refresh() -> None:
    line = vmmanifest.mirror_verdict(_manifest(), M, {"Date": NEW, "Version": "12.16"}, "")
    assert line.startswith("the Debian mirror has moved on since the image was built")
    assert OLD in line and NEW in line and "12.15 -> 12.16" in line
    assert "linux-image-cloud-amd64 6.1.140-1, systemd 252.38-1~deb12u1" in line
    assert "zlib1g" not in line and "--refresh" in line and "\n" not in line


def test_same_release_date_is_in_step() -> None:
    line = vmmanifest.mirror_verdict(_manifest(), M, {"Date": OLD}, "")
    assert line == f"the image matches {M} (Release of {OLD})"


def test_unreachable_mirror_or_no_manifest_only_says_so() -> None:
    line = vmmanifest.mirror_verdict(_manifest(), M, None, "timed out")
    assert line.startswith(f"could not check whether {M} moved on")
    assert "timed out" in line and "going on" in line
    line = vmmanifest.mirror_verdict(None, M, None, "")
    assert line.startswith("the cached image has no package manifest")
    assert "--refresh" in line


def test_mirror_lines_ask_an_unreachable_mirror_once(tmp_path: Path) -> None:
    asked: list[str] = []

    def fetch(mirror: str, suite: str, timeout: float) -> dict[str, str]:
        asked.append(suite)
        assert mirror == "http://lab-mirror/debian"  # the lab's, not the one of the build
        assert timeout <= 10
        raise OSError("Connection refused")

    folders = []
    for suite in ("bullseye", "bookworm"):
        (tmp_path / suite).mkdir()
        vmmanifest.write_manifest(tmp_path / suite, {**_manifest(), "suite": suite})
        folders.append((suite, tmp_path / suite))
    (tmp_path / "old").mkdir()  # an image from before manifests
    lines = vmmanifest.mirror_lines(
        [*folders, ("trixie", tmp_path / "old")], mirror="http://lab-mirror/debian", fetch=fetch
    )
    assert asked == ["bullseye"]
    assert [s for s, _ in lines] == ["bullseye", "bookworm", "trixie"]
    assert all("Connection refused" in line for _s, line in lines[:2])
    assert "no package manifest" in lines[2][1]


def test_refresh_is_a_qemu_option_kept_off_the_spec(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from labctl.cli.common import open_lab

    monkeypatch.setenv("LABCTL_HOME", str(tmp_path))
    lab = open_lab("r", driver="qemu", hosts=("bookworm",), refresh=True)
    assert isinstance(lab, QemuLab) and lab.refresh and "refresh" not in lab.spec.to_dict()
    assert open_lab("r", driver="qemu", hosts=("bookworm",)).refresh is False
    (tmp_path / "labs" / "r").mkdir(parents=True)
    (tmp_path / "labs" / "r" / "lab.json").write_text(
        json.dumps({"driver": "qemu", "spec": QemuLabSpec(name="r").to_dict()})
    )
    again = open_lab("r", refresh=True)  # the lab as it was made, refreshed
    assert again.refresh and len(again.spec.hosts) == 3
    with pytest.raises(ConfigError, match="--refresh: qemu lab options"):
        open_lab("docker-lab", driver="docker", refresh=True)


def test_refresh_builds_even_a_cached_image(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LABCTL_CACHE", str(tmp_path))
    recipe = vmimages.vm_recipe_for("bookworm")
    cached = vmimages.VmImage("bookworm", recipe.short_hash, recipe.directory, "6.1")
    monkeypatch.setattr(vmimages, "load_image", lambda r: cached)
    calls: list[bool] = []

    def build(r: vmimages.VmRecipe, mirror: str, **kw: object) -> vmimages.VmImage:
        calls.append(bool(kw["refresh"]))
        return cached

    monkeypatch.setattr(vmimages, "build_vm_image", build)
    got = vmimages.ensure_vm_images(["bookworm", "bookworm"], mirror="http://m/debian")
    assert calls == [] and not got["bookworm"].built_now
    got = vmimages.ensure_vm_images(["bookworm", "bookworm"], mirror="http://m/debian",
                                    refresh=True)  # fmt: skip
    assert calls == [True] and got["bookworm"].built_now


def test_an_image_that_fails_its_boot_check_is_not_cached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The build's own steps stand in (debootstrap, chroot, mkfs need root and minutes); what
    is tested is the order: manifest, check, and only then image.json and the cache folder."""
    monkeypatch.setenv("LABCTL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(vmimages, "check_vm_build_prerequisites", lambda: None)
    monkeypatch.setattr(debootstrap, "run_debootstrap", lambda *a, **k: None)
    monkeypatch.setattr(vmmanifest, "tree_manifest", lambda root, **k: _manifest())
    monkeypatch.setattr(vmimages, "customize_tree", lambda *a: "6.1.0-99-cloud-amd64")
    monkeypatch.setattr(vmimages, "_write_boot_files", lambda *a: "labctl")
    monkeypatch.setattr(vmimages, "_run", lambda cmd, *a, **k: Path(cmd[-2]).write_bytes(b""))
    seen: list[dict[str, object]] = []

    def check(img: vmimages.VmImage) -> None:
        seen.append(json.loads((img.directory / "manifest.json").read_text()))
        assert not (img.directory / "image.json").exists() and img.disk.exists()
        raise LabError("failed its boot check: not ready", host=img.suite)

    recipe = vmimages.vm_recipe_for("bookworm")
    with pytest.raises(LabError, match="bookworm: failed its boot check"):
        vmimages.build_vm_image(recipe, "http://m/debian", check=check)
    assert seen and seen[0]["packages"] == _manifest()["packages"] and "built" in seen[0]
    assert vmimages.load_image(recipe) is None
    assert [p.name for p in vmimages.vm_cache_dir().iterdir()] == [".lock-bookworm"]
    assert not list(Path(tempfile.gettempdir()).glob(f"labctl-build-vm-bookworm-{os.getpid()}-*"))
