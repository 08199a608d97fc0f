"""Pure logic of the docker driver: recipe hashing, mirror detection, sizes, spec validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.drivers import images
from labctl.drivers.docker import DockerLab, DockerLabSpec, GiB, MiB, parse_size
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
    assert "python2.7-minimal" in bull.packages
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
    monkeypatch.setenv(images.MIRROR_ENV, "http://mirror.example.org/debian")
    assert images.recipe_for("bullseye").digest == before
    # nothing mirror-like takes part in the hash at all
    assert "mirror" not in images.Recipe.__dataclass_fields__


def test_recipe_files_are_the_shipped_ones() -> None:
    r = images.recipe_for("bookworm")
    assert set(r.files) == set(images.IMAGE_FILES)
    assert r.files["labctl-entrypoint"].startswith(b"#!/bin/bash")
    assert b"teardown" in r.files["labctl-dockerd"]


def test_unknown_suite_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="buster"):
        images.recipe_for("buster")


# --- mirror detection ---------------------------------------------------------------------------


def _paths(tmp_path: Path) -> tuple[Path, Path]:
    d = tmp_path / "sources.list.d"
    d.mkdir()
    return tmp_path / "sources.list", d


def test_mirror_from_one_line_sources_list(tmp_path: Path) -> None:
    sl, d = _paths(tmp_path)
    sl.write_text(
        "# comment\n"
        "deb-src http://src.example.org/debian bookworm main\n"
        "deb http://security.debian.org/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://ftp.example.org/debian/ bookworm main\n"
        "deb http://later.example.org/debian bookworm main\n"
    )
    got = images.detect_mirror(environ={}, sources_list=sl, sources_dir=d)
    assert got == "http://ftp.example.org/debian"


def test_mirror_from_deb822_sources(tmp_path: Path) -> None:
    sl, d = _paths(tmp_path)
    (d / "a-nodesource.sources").write_text(
        "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n"
    )
    (d / "debian.sources").write_text(
        "Types: deb\n"
        "# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
        "URIs: http://deb.debian.org/debian\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main\n"
        "\n"
        "Types: deb\n"
        "URIs: http://deb.debian.org/debian-security\n"
        "Suites: bookworm-security\n"
    )
    (d / "old.list.disabled").write_text("deb http://wrong.example.org/debian bookworm main\n")
    got = images.detect_mirror(environ={}, sources_list=sl, sources_dir=d)
    assert got == "http://deb.debian.org/debian"


def test_mirror_deb822_skips_disabled_and_src_stanzas(tmp_path: Path) -> None:
    sl, d = _paths(tmp_path)
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://off.example.org/debian\nSuites: x\nEnabled: no\n\n"
        "Types: deb-src\nURIs: http://src.example.org/debian\nSuites: x\n\n"
        "Types: deb deb-src\nURIs: http://first.example.org/debian http://second.example.org/debian\n"
        "Suites: x\n"
    )
    got = images.detect_mirror(environ={}, sources_list=sl, sources_dir=d)
    assert got == "http://first.example.org/debian"


def test_sources_list_comes_before_sources_dir(tmp_path: Path) -> None:
    sl, d = _paths(tmp_path)
    sl.write_text("deb http://main.example.org/debian bookworm main\n")
    (d / "debian.sources").write_text("Types: deb\nURIs: http://dir.example.org/debian\n")
    assert images.detect_mirror(environ={}, sources_list=sl, sources_dir=d) == (
        "http://main.example.org/debian"
    )


def test_mirror_env_override(tmp_path: Path) -> None:
    sl, d = _paths(tmp_path)
    sl.write_text("deb http://main.example.org/debian bookworm main\n")
    env = {images.MIRROR_ENV: "http://override.example.org/debian/"}
    assert images.detect_mirror(environ=env, sources_list=sl, sources_dir=d) == (
        "http://override.example.org/debian"
    )
    with pytest.raises(ConfigError, match=images.MIRROR_ENV):
        images.detect_mirror(environ={images.MIRROR_ENV: "ftp:/x"}, sources_list=sl, sources_dir=d)


def test_no_mirror_is_a_clear_config_error(tmp_path: Path) -> None:
    sl, d = _paths(tmp_path)
    sl.write_text("deb http://archive.ubuntu.com/ubuntu jammy main\n")
    with pytest.raises(ConfigError) as info:
        images.detect_mirror(environ={}, sources_list=sl, sources_dir=d)
    assert images.MIRROR_ENV in str(info.value)


def test_missing_files_are_fine_until_nothing_is_found(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        images.detect_mirror(
            environ={}, sources_list=tmp_path / "nope", sources_dir=tmp_path / "nodir"
        )


# --- sizes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1GiB", GiB),
        ("512MiB", 512 * MiB),
        ("1g", GiB),
        ("1G", GiB),
        ("256m", 256 * MiB),
        ("1.5GiB", 3 * GiB // 2),
        ("1GB", 1000**3),
        ("4096", 4096),
        (" 2 GiB ", 2 * GiB),
        (123, 123),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "GiB", "1 parsec", "-1GiB", "1e9", True])
def test_parse_size_rejects(bad: object) -> None:
    with pytest.raises(ConfigError, match="disk_size"):
        parse_size(bad, what="disk_size")  # type: ignore[arg-type]


# --- spec ---------------------------------------------------------------------------------------


def test_spec_defaults_are_valid() -> None:
    spec = DockerLabSpec()
    spec.validate()
    assert spec.suites == ("bullseye", "bookworm", "trixie")
    assert spec.disk_size == GiB and spec.memory == GiB
    assert spec.disk_inodes == 20000 and spec.pids_limit == 512
    assert spec.storage_driver == "overlay2" and spec.mirror is None


def test_spec_accepts_size_strings() -> None:
    spec = DockerLabSpec(disk_size="512MiB", memory="1g")  # type: ignore[arg-type]
    assert spec.disk_size == 512 * MiB
    assert spec.memory == GiB


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "Bad-Name"}, "name"),
        ({"name": ""}, "name"),
        ({"suites": ()}, "suites"),
        ({"suites": ("buster",)}, "suites"),
        ({"suites": ("bookworm", "bookworm")}, "suites"),
        ({"disk_size": 100 * MiB}, "disk_size"),
        ({"disk_inodes": 10}, "disk_inodes"),
        ({"disk_size": 256 * MiB, "disk_inodes": 10_000_000}, "disk_inodes"),
        ({"memory": 64 * MiB}, "memory"),
        ({"pids_limit": 10}, "pids_limit"),
        ({"storage_driver": "devicemapper"}, "storage_driver"),
        ({"mirror": "deb.debian.org/debian"}, "mirror"),
    ],
)
def test_spec_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    spec = DockerLabSpec(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as info:
        spec.validate()
    assert str(info.value).startswith(f"{field}:")


def test_spec_bad_size_string_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"^memory:"):
        DockerLabSpec(memory="lots")  # type: ignore[arg-type]


def test_spec_from_mapping() -> None:
    spec = DockerLabSpec.from_mapping(
        {"name": "t1", "suites": "bookworm,trixie", "disk_size": "512MiB"}
    )
    assert spec.suites == ("bookworm", "trixie")
    assert spec.disk_size == 512 * MiB
    with pytest.raises(ConfigError, match="disk_sise"):
        DockerLabSpec.from_mapping({"disk_sise": "1GiB"})
    assert json.loads(json.dumps(spec.to_dict()))["suites"] == ["bookworm", "trixie"]


def test_lab_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path))
    lab = DockerLab(DockerLabSpec(name="t42"), client=object())
    assert lab.container_name("bookworm") == "labctl-lab-t42-bookworm"
    assert lab.network_name == "labctl-t42"
    assert lab.disk_image("trixie") == "/labctl-disk-t42-trixie.img"
    assert lab.directory == tmp_path / "labs" / "t42"
    assert len({lab.bip(i) for i in range(3)}) == 3


def test_unreachable_engine_is_a_clear_lab_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labctl.errors import LabError

    monkeypatch.setenv("LABCTL_HOME", str(tmp_path))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    lab = DockerLab(DockerLabSpec(name="t1"))
    with pytest.raises(LabError) as info:
        lab.status()
    text = str(info.value)
    assert "cannot reach the Docker engine" in text and "DOCKER_HOST" in text


def test_build_prerequisites(monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.errors import LabError

    monkeypatch.setattr(images.shutil, "which", lambda _name: None)
    with pytest.raises(LabError, match="apt-get install debootstrap"):
        images.check_build_prerequisites()
    monkeypatch.setattr(images.shutil, "which", lambda _name: "/usr/sbin/debootstrap")
    monkeypatch.setattr(images.os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="root"):
        images.check_build_prerequisites()


def test_remove_tree_removes_a_plain_tree(tmp_path: Path) -> None:
    tree = tmp_path / "labctl-build-x"
    (tree / "root" / "etc").mkdir(parents=True)
    (tree / "root" / "etc" / "f").write_text("x")
    images.remove_tree(tree)
    assert not tree.exists()
