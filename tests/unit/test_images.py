"""Pure logic of the lab host images: recipe hashing, packages, mirror detection, build checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labctl import debootstrap
from labctl.drivers.docker import DockerLabSpec, images
from labctl.errors import ConfigError

# --- recipes ------------------------------------------------------------------------------------


def test_recipe_tag_shape_and_stability() -> None:
    a = images.recipe_for("bookworm")
    b = images.recipe_for("bookworm")
    assert a.digest == b.digest
    assert a.tag == f"labctl-host:bookworm-{a.digest[:12]}"
    assert len(a.short_hash) == 12


def test_recipe_differs_per_suite_and_has_suite_extras() -> None:
    bull, book, trix = (images.recipe_for(s) for s in ("bullseye", "bookworm", "trixie"))
    assert len({bull.digest, book.digest, trix.digest}) == 3
    assert "python2.7" in bull.packages
    assert "docker-cli" in trix.packages
    for r in (bull, book, trix):
        for pkg in ("openssh-server", "docker.io", "python3", "tini", "e2fsprogs"):
            assert pkg in r.packages


def test_recipe_hash_changes_with_packages() -> None:
    r = images.recipe_for("bookworm")
    more = images.Recipe(suite=r.suite, packages=(*r.packages, "strace"), files=r.files)
    assert more.digest != r.digest
    assert more.tag != r.tag


def test_recipe_hash_ignores_package_order() -> None:
    r = images.recipe_for("bookworm")
    shuffled = images.Recipe(suite=r.suite, packages=tuple(reversed(r.packages)), files=r.files)
    assert shuffled.digest == r.digest


def test_recipe_hash_changes_with_entrypoint_and_version() -> None:
    r = images.recipe_for("trixie")
    files = dict(r.files)
    files["labctl-entrypoint"] = files["labctl-entrypoint"] + b"\n# changed\n"
    assert images.recipe_for("trixie", files=files).digest != r.digest
    newer = images.Recipe(suite=r.suite, packages=r.packages, files=r.files, version=r.version + 1)
    assert newer.digest != r.digest


def test_recipe_hash_does_not_depend_on_the_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    before = images.recipe_for("bullseye").digest
    monkeypatch.setenv(debootstrap.MIRROR_ENV, "http://mirror.example.org/debian")
    assert images.recipe_for("bullseye").digest == before
    # nothing mirror-like takes part in the hash at all
    assert "mirror" not in images.Recipe.__dataclass_fields__


def test_recipe_files_are_the_shipped_ones() -> None:
    r = images.recipe_for("bookworm")
    assert set(r.files) == set(images.IMAGE_FILES)
    assert r.files["labctl-entrypoint"].startswith(b"#!/bin/bash")
    assert b"teardown" in r.files["labctl-dockerd"]


def test_variant_recipes_differ_and_are_stable() -> None:
    tags: dict[tuple[str, tuple[tuple[str, object], ...]], str] = {}
    cases: list[tuple[str, dict[str, object]]] = [
        ("bookworm", {}),
        ("bookworm", {"docker": False}),
        ("bookworm", {"python": "none"}),
        ("bookworm", {"docker": False, "python": "none"}),
        ("bullseye", {}),
        ("bullseye", {"python": "python2.7"}),
        ("trixie", {"docker": False}),
    ]
    for suite, kw in cases:
        r = images.recipe_for(suite, **kw)  # type: ignore[arg-type]
        again = images.recipe_for(suite, **kw)  # type: ignore[arg-type]
        assert r.digest == again.digest and r.tag == again.tag
        tags[(suite, tuple(sorted(kw.items())))] = r.tag
    assert len(set(tags.values())) == len(tags)
    assert tags[("bookworm", ())].startswith("labctl-host:bookworm-")
    assert tags[("bookworm", (("docker", False),))].startswith("labctl-host:bookworm-nodocker-")
    assert tags[("bookworm", (("python", "none"),))].startswith("labctl-host:bookworm-nopython-")
    assert tags[("bookworm", (("docker", False), ("python", "none")))].startswith(
        "labctl-host:bookworm-nodocker-nopython-"
    )
    assert tags[("bullseye", (("python", "python2.7"),))].startswith("labctl-host:bullseye-py27-")


def test_variant_recipe_packages() -> None:
    nodocker = images.recipe_for("trixie", docker=False)
    assert not {"docker.io", "docker-cli"} & set(nodocker.packages)
    assert {"python3", "tini", "iptables", "xfsprogs", "btrfs-progs"} <= set(nodocker.packages)
    nopy = images.recipe_for("bookworm", python="none")
    assert "docker.io" in nopy.packages
    # xfsprogs depends on python3 (xfs_scrub_all): not in images without python3
    assert not [p for p in nopy.packages if "python" in p] and "xfsprogs" not in nopy.packages
    py27 = images.recipe_for("bullseye", python="python2.7")
    assert "python2.7" in py27.packages and "python3" not in py27.packages
    assert "xfsprogs" not in py27.packages


def test_variant_recipe_errors() -> None:
    with pytest.raises(ConfigError, match=r"python2\.7"):
        images.recipe_for("bookworm", python="python2.7")
    with pytest.raises(ConfigError, match="python"):
        images.recipe_for("bookworm", python="python2.6")


def test_unwanted_packages() -> None:
    installed = ["libc6", "python3.11-minimal", "libpython3.11-stdlib", "python2.7", "docker.io"]
    assert images.unwanted_packages(images.recipe_for("bookworm"), installed) == []
    nopy = images.recipe_for("bookworm", python="none", docker=False)
    assert images.unwanted_packages(nopy, installed) == [
        "docker.io",
        "libpython3.11-stdlib",
        "python2.7",
        "python3.11-minimal",
    ]
    py27 = images.recipe_for("bullseye", python="python2.7")
    assert images.unwanted_packages(py27, installed) == [
        "libpython3.11-stdlib",
        "python3.11-minimal",
    ]


def test_installed_packages_reads_dpkg_status(tmp_path: Path) -> None:
    status = tmp_path / "var" / "lib" / "dpkg" / "status"
    status.parent.mkdir(parents=True)
    status.write_text(
        "Package: libc6\nStatus: install ok installed\nVersion: 2.36\n\n"
        "Package: python3\nStatus: deinstall ok config-files\n\n"
        "Package: tini\nStatus: install ok installed\n"
    )
    assert images.installed_packages(tmp_path) == ["libc6", "tini"]
    assert images.installed_packages(tmp_path / "nope") == []


def test_unknown_suite_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="buster"):
        images.recipe_for("buster")


# --- mirror detection ---------------------------------------------------------------------------


def _detect(
    tmp_path: Path,
    sources_list: str | None = None,
    sources_d: dict[str, str] | None = None,
    environ: dict[str, str] | None = None,
) -> str:
    """detect_mirror over a sources.list and sources.list.d/ files with the given texts."""
    sl, d = tmp_path / "sources.list", tmp_path / "sources.list.d"
    d.mkdir(exist_ok=True)
    if sources_list is not None:
        sl.write_text(sources_list)
    for name, text in (sources_d or {}).items():
        (d / name).write_text(text)
    return debootstrap.detect_mirror(environ=environ or {}, sources_list=sl, sources_dir=d)


def test_mirror_from_one_line_sources_list(tmp_path: Path) -> None:
    got = _detect(
        tmp_path,
        "# comment\n"
        "deb-src http://src.example.org/debian bookworm main\n"
        "deb http://security.debian.org/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://ftp.example.org/debian/ bookworm main\n"
        "deb http://later.example.org/debian bookworm main\n",
    )
    assert got == "http://ftp.example.org/debian"


def test_mirror_from_deb822_sources(tmp_path: Path) -> None:
    got = _detect(
        tmp_path,
        sources_d={
            "a-nodesource.sources": (
                "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n"
            ),
            "debian.sources": (
                "Types: deb\n"
                "# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
                "URIs: http://deb.debian.org/debian\n"
                "Suites: bookworm bookworm-updates\n"
                "Components: main\n"
                "\n"
                "Types: deb\n"
                "URIs: http://deb.debian.org/debian-security\n"
                "Suites: bookworm-security\n"
            ),
            "old.list.disabled": "deb http://wrong.example.org/debian bookworm main\n",
        },
    )
    assert got == "http://deb.debian.org/debian"


def test_mirror_deb822_skips_disabled_and_src_stanzas(tmp_path: Path) -> None:
    text = (
        "Types: deb\nURIs: http://off.example.org/debian\nSuites: x\nEnabled: no\n\n"
        "Types: deb-src\nURIs: http://src.example.org/debian\nSuites: x\n\n"
        "Types: deb deb-src\nURIs: http://first.example.org/debian http://second.example.org/debian\n"
        "Suites: x\n"
    )
    assert _detect(tmp_path, sources_d={"debian.sources": text}) == (
        "http://first.example.org/debian"
    )


def test_sources_list_comes_before_sources_dir(tmp_path: Path) -> None:
    got = _detect(
        tmp_path,
        "deb http://main.example.org/debian bookworm main\n",
        {"debian.sources": "Types: deb\nURIs: http://dir.example.org/debian\n"},
    )
    assert got == "http://main.example.org/debian"


def test_mirror_env_override(tmp_path: Path) -> None:
    main = "deb http://main.example.org/debian bookworm main\n"
    env = {debootstrap.MIRROR_ENV: "http://override.example.org/debian/"}
    assert _detect(tmp_path, main, environ=env) == "http://override.example.org/debian"
    with pytest.raises(ConfigError, match=debootstrap.MIRROR_ENV):
        _detect(tmp_path, main, environ={debootstrap.MIRROR_ENV: "ftp:/x"})


def test_no_mirror_is_a_clear_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _detect(tmp_path, "deb http://archive.ubuntu.com/ubuntu jammy main\n")
    assert debootstrap.MIRROR_ENV in str(info.value)


def test_missing_files_are_fine_until_nothing_is_found(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        debootstrap.detect_mirror(
            environ={}, sources_list=tmp_path / "nope", sources_dir=tmp_path / "nodir"
        )


def test_build_prerequisites(monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.errors import LabError

    monkeypatch.setattr("shutil.which", lambda _name: None)
    with pytest.raises(LabError, match="apt-get install debootstrap"):
        debootstrap.check_build_prerequisites()
    monkeypatch.setattr("shutil.which", lambda _name: "/usr/sbin/debootstrap")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(LabError, match="root"):
        debootstrap.check_build_prerequisites()


def test_remove_tree_removes_a_plain_tree(tmp_path: Path) -> None:
    tree = tmp_path / "labctl-build-x"
    (tree / "root" / "etc").mkdir(parents=True)
    (tree / "root" / "etc" / "f").write_text("x")
    debootstrap.remove_tree(tree)
    assert not tree.exists()


# --- images of host variants --------------------------------------------------------------------


def test_a_killed_builds_folder_is_removed_by_the_next_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that has just exited: what a SIGKILLed build leaves behind
    orphan = tmp_path / f"labctl-build-vm-bullseye-{gone.pid}-abcd_123"
    (orphan / "root" / "etc").mkdir(parents=True)
    live = tmp_path / "labctl-build-engine-1-zzzzzzzz"  # pid 1 is alive: another build
    live.mkdir()
    unnamed = tmp_path / "labctl-build-old-x1y2z3w4"
    unnamed.mkdir()
    assert debootstrap.build_dir_pid(orphan) == gone.pid
    assert debootstrap.build_dir_pid(unnamed) is None
    assert debootstrap.orphan_build_dirs() == [orphan]
    mine = debootstrap.new_build_dir("vm-trixie")
    assert mine.parent == tmp_path and debootstrap.build_dir_pid(mine) == os.getpid()
    assert not orphan.exists() and live.exists() and unnamed.exists()
    assert debootstrap.orphan_build_dirs() == []  # its own folder is never an orphan


def test_host_images_only_for_variants_that_need_them() -> None:
    spec = DockerLabSpec(
        hosts=("bookworm/driver=vfs", "bookworm/fs=xfs", "bookworm/docker=no")  # type: ignore[arg-type]
    )
    tags = [h.image_recipe().tag for h in spec.host_specs()]
    assert tags[0] == tags[1] == images.recipe_for("bookworm").tag  # drivers/fs: same image
    assert tags[2] == images.recipe_for("bookworm", docker=False).tag
