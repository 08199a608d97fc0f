"""Pure logic of labctl.engines: commit ids of archives, patches, manifests and the cache."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
import struct
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.engines import build, buildimage, elf, gittree, patchset, source, store, versions
from labctl.errors import ConfigError
from tests.conftest import fake_engine_build

COMMIT = versions.KNOWN_VERSIONS["1.5.0"].commit


def make_archive(path: Path, comment: str | None, *, gz: bool = True) -> Path:
    """A small `git archive`-like tar: a pax global header carrying the commit id, one file."""
    headers = {"comment": comment} if comment is not None else {}
    with tarfile.open(
        path, "w:gz" if gz else "w", format=tarfile.PAX_FORMAT, pax_headers=headers
    ) as tar:
        data = b"1.5.0\n"
        info = tarfile.TarInfo("moby-1.5.0/VERSION")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


# -- source archives ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_commit_id_is_read_from_the_pax_global_header(tmp_path: Path, gz: bool) -> None:
    archive = make_archive(tmp_path / "a.tar", COMMIT, gz=gz)
    assert source.read_commit_id(archive) == COMMIT


def test_the_tag_commit_id_on_other_files_is_refused_as_altered(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "moby.tar.gz", COMMIT)
    known = versions.known_version("1.5.0")
    with pytest.raises(ConfigError) as err:
        source.resolve_source(str(archive), known)
    assert "its files are not that commit's" in err.value.line()
    # the cheap check alone (used while a build is cached) accepts it
    got = source.resolve_source(str(archive), known, content=False)
    assert got.commit == COMMIT and got.tree == ""
    assert got.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert got.path == archive.resolve()


def test_the_known_commit_object_hashes_to_the_commit() -> None:
    known = versions.known_version("1.5.0")
    assert gittree.git_object_id("commit", known.commit_object) == COMMIT
    assert known.tree == "7ac817b0deb0030794a4f3b47567de171895933a"
    forged = dataclasses.replace(known, commit_object=known.commit_object.replace(b"7ac8", b"0000"))
    with pytest.raises(ValueError, match="is not a8a31eff"):
        _ = forged.tree


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_commit_and_tree_ids_match_what_git_says(tmp_path: Path) -> None:
    """A real `git archive` of a small repository: our ids are git's."""
    repo = tmp_path / "repo"
    (repo / "sub" / "deep").mkdir(parents=True)
    (repo / "a.b").write_text("dot sorts before slash\n")
    (repo / "a").mkdir()
    (repo / "a" / "x").write_text("x\n")
    (repo / "sub" / "deep" / "f").write_bytes(bytes(range(256)))
    (repo / "run.sh").write_text("#!/bin/sh\n")
    (repo / "run.sh").chmod(0o755)
    (repo / "link").symlink_to("sub/deep/f")
    (repo / "empty").write_bytes(b"")

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=repo, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "test")
    archive = tmp_path / "repo.tar"
    git("archive", "--prefix=repo-1/", "-o", str(archive), "HEAD")
    assert source.read_commit_id(archive) == git("rev-parse", "HEAD")
    assert gittree.archive_tree_id(archive) == git("rev-parse", "HEAD^{tree}")
    raw = subprocess.run(
        ["git", "cat-file", "commit", "HEAD"], cwd=repo, capture_output=True, check=True
    ).stdout
    assert gittree.git_object_id("commit", raw) == git("rev-parse", "HEAD")
    assert gittree.commit_tree(raw) == git("rev-parse", "HEAD^{tree}")


def test_an_archive_without_a_commit_id_is_refused_in_one_line(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "plain.tar.gz", None)
    with pytest.raises(ConfigError) as err:
        source.resolve_source(str(archive), versions.known_version("1.5.0"))
    line = err.value.line()
    assert str(archive) in line and "no commit id" in line and "\n" not in line
    assert "github.com/moby/moby/archive/refs/tags/v1.5.0" in line


def test_an_archive_of_another_commit_is_refused_whatever_its_name(tmp_path: Path) -> None:
    other = "0" * 40
    archive = make_archive(tmp_path / "moby-v1.5.0.tar.gz", other)
    with pytest.raises(ConfigError) as err:
        source.resolve_source(str(archive), versions.known_version("1.5.0"))
    assert other in err.value.line() and COMMIT in err.value.line()


def test_a_file_that_is_not_a_tar_is_a_config_error(tmp_path: Path) -> None:
    bogus = tmp_path / "x.tar.gz"
    bogus.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ConfigError, match="not a readable tar archive"):
        source.resolve_source(str(bogus), versions.known_version("1.5.0"))


def test_a_missing_source_file_and_an_unknown_version_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        source.resolve_source(str(tmp_path / "nope.tgz"), versions.known_version("1.5.0"))
    with pytest.raises(ConfigError, match=r"known versions: 1\.5\.0"):
        versions.known_version("1.4.1")
    assert versions.known_versions() == ["1.5.0"]
    assert versions.known_version("1.5.0").expected_version_line == (
        "Docker version 1.5.0, build a8a31ef"
    )


# -- patches -----------------------------------------------------------------------------------


def test_the_shipped_patches_are_listed_with_a_reason_and_hash() -> None:
    found = patchset.load_patches("1.5.0")
    assert [p.name for p in found] == [
        "0001-vendor-import-path.patch",
        "0002-devmapper-flexible-array.patch",
    ]
    for p in found:
        assert p.reason and len(p.reason) < 120
        assert p.sha256 == hashlib.sha256(p.path.read_bytes()).hexdigest()
    # every patch file in the folder is in the series (none forgotten, none applied unlisted)
    on_disk = {f.name for f in patchset.patches_dir("1.5.0").glob("*.patch")}
    assert on_disk == {p.name for p in found}


def test_series_parsing_and_its_errors(tmp_path: Path) -> None:
    assert patchset.parse_series("# c\n\na.patch  why a\nb.patch why b\n") == [
        ("a.patch", "why a"),
        ("b.patch", "why b"),
    ]
    (tmp_path / "series").write_text("a.patch\n")
    (tmp_path / "a.patch").write_text("x")
    with pytest.raises(ConfigError, match="has no reason"):
        patchset.load_patches("9.9", base=tmp_path)
    (tmp_path / "series").write_text("b.patch because\n")
    with pytest.raises(ConfigError, match=r"b\.patch listed in"):
        patchset.load_patches("9.9", base=tmp_path)
    assert patchset.load_patches("9.9", base=tmp_path / "none") == []


# -- build settings and the cache key ----------------------------------------------------------


def test_build_flags_are_the_eras_static_bundle_with_new_style_x() -> None:
    flags = build.build_flags(versions.known_version("1.5.0"))
    assert flags["tags"] == ["netgo", "static_build", "exclude_graphdriver_btrfs", "daemon"]
    xs = [f for f in flags["ldflags"] if f.startswith("-X ")]
    assert xs == [
        "-X github.com/docker/docker/dockerversion.GITCOMMIT=a8a31ef",
        "-X github.com/docker/docker/dockerversion.VERSION=1.5.0",
        "-X github.com/docker/docker/dockerversion.IAMSTATIC=true",
    ]
    assert "-linkmode external" in flags["ldflags"]


def test_inputs_change_with_a_patch_or_the_build_image() -> None:
    known = versions.known_version("1.5.0")
    ps = patchset.load_patches("1.5.0")
    recipe = buildimage.build_image_recipe()
    base = build.build_inputs(known, ps, recipe)
    assert base == build.build_inputs(known, ps, buildimage.build_image_recipe())
    changed = [patchset.Patch(ps[0].name, ps[0].reason, "0" * 64, ps[0].path), *ps[1:]]
    assert build.build_inputs(known, changed, recipe) != base
    other_image = buildimage.build_image_recipe(
        files={k: v + b"\n" for k, v in recipe.files.items()}
    )
    assert other_image.tag != recipe.tag
    assert build.build_inputs(known, ps, other_image) != base
    assert recipe.tag.startswith("labctl-engine-build:bookworm-") and len(recipe.short_hash) == 12


def test_buildinfo_lines_are_parsed() -> None:
    text = "go=go version go1.19.8 linux/amd64\nversion=Docker version 1.5.0, build a8a31ef\n"
    assert build.parse_buildinfo(text) == {
        "go": "go version go1.19.8 linux/amd64",
        "version": "Docker version 1.5.0, build a8a31ef",
    }


# -- static ELF --------------------------------------------------------------------------------


def tiny_elf(path: Path, ptypes: list[int]) -> Path:
    """An ELF64 little-endian header followed by program headers of the given types."""
    phoff, phentsize = 64, 56
    header = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x400000, phoff, 0, 0, 64,
                          phentsize, len(ptypes), 64, 0, 0)  # fmt: skip
    body = b"".join(struct.pack("<I", t) + bytes(phentsize - 4) for t in ptypes)
    path.write_bytes(header + body)
    return path


def test_static_elf_detection(tmp_path: Path) -> None:
    assert elf.is_static_elf(tiny_elf(tmp_path / "static", [1, 1, 4]))  # LOAD, LOAD, NOTE
    assert not elf.is_static_elf(tiny_elf(tmp_path / "dyn", [6, 3, 1, 2]))  # PHDR, INTERP...
    assert not elf.is_static_elf(tiny_elf(tmp_path / "pie", [1, 2]))  # DYNAMIC only
    (tmp_path / "text").write_text("#!/bin/sh\n")
    assert not elf.is_static_elf(tmp_path / "text")


# -- the cache ---------------------------------------------------------------------------------


def test_no_build_means_require_engine_says_how_to_build(engine_cache: Path) -> None:
    assert store.find_engine("1.5.0") is None
    assert store.list_engines() == []
    with pytest.raises(ConfigError) as err:
        store.require_engine("1.5.0")
    assert err.value.line() == (
        "Docker 1.5.0 is not built yet; run `labctl engine build 1.5.0 --source FILE`"
    )


def test_a_cached_build_is_found_and_listed(engine_cache: Path) -> None:
    d = fake_engine_build(store.build_dir("1.5.0", COMMIT))
    assert d == engine_cache / "engines" / "docker-1.5.0-a8a31ef"
    found = store.require_engine("1.5.0")
    assert found.binary == d / "docker" and found.directory == d
    assert found.sha256 == hashlib.sha256(b"\x7fELF fake docker").hexdigest()
    assert found.commit == COMMIT and found.manifest["go"].startswith("go version")
    assert [b.version for b in store.list_engines()] == ["1.5.0"]
    table = store.engines_table(store.list_engines()).splitlines()
    assert table[0].split()[:3] == ["VERSION", "COMMIT", "SHA256"]
    assert table[1].split()[:5] == ["1.5.0", "a8a31ef", found.sha256[:12], "0.0", "MB"]
    assert table[1].endswith(str(found.binary)) and "go1.19.8" in table[1]


def test_an_altered_binary_or_manifest_is_not_a_build(engine_cache: Path) -> None:
    d = fake_engine_build(store.build_dir("1.5.0", COMMIT))
    (d / "docker").write_bytes(b"changed")
    assert store.find_engine("1.5.0") is None
    (d / "manifest.json").write_text("{not json")
    assert store.load_build(d) is None


def test_install_build_replaces_an_older_build_whole(engine_cache: Path) -> None:
    final = store.build_dir("1.5.0", COMMIT)
    fake_engine_build(final, b"old")
    staging = fake_engine_build(engine_cache / "engines" / ".staging", b"new")
    store.install_build(staging, final)
    assert not staging.exists()
    assert (final / "docker").read_bytes() == b"new"
    assert json.loads((final / "manifest.json").read_text())["binary_size"] == 3
    assert [p.name for p in (engine_cache / "engines").iterdir()] == [final.name]


def current_inputs() -> dict[str, object]:
    known = versions.known_version("1.5.0")
    return build.build_inputs(
        known, patchset.load_patches("1.5.0"), buildimage.build_image_recipe()
    )


def test_a_build_with_matching_inputs_is_reused_without_docker(engine_cache: Path) -> None:
    d = fake_engine_build(store.build_dir("1.5.0", COMMIT))
    manifest = json.loads((d / "manifest.json").read_text())
    store.write_manifest(d, {**manifest, "inputs": current_inputs()})
    said: list[str] = []
    out = build.build_engine("1.5.0", client=object(), progress=lambda _h, m: said.append(m))
    assert out.cached and out.build.directory == d
    assert said and said[0].startswith("cached: ")


def test_a_wrong_source_file_is_refused_even_when_a_build_is_cached(
    engine_cache: Path, tmp_path: Path
) -> None:
    d = fake_engine_build(store.build_dir("1.5.0", COMMIT))
    manifest = json.loads((d / "manifest.json").read_text())
    store.write_manifest(d, {**manifest, "inputs": current_inputs()})
    wrong = make_archive(tmp_path / "moby-v1.5.0.tar.gz", "1" * 40)
    with pytest.raises(ConfigError, match="is commit 1111"):
        build.build_engine("1.5.0", source=str(wrong), client=object())


# -- the CLI (no build: unknown versions, bad sources, the cache) ------------------------------


def test_engine_cli_lists_and_refuses_in_one_line(engine_cache: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from labctl.cli import main

    runner = CliRunner()
    res = runner.invoke(main, ["engine", "list"])
    assert res.exit_code == 0 and "no engines built yet" in res.output
    res = runner.invoke(main, ["engine", "build", "1.4.1"])
    assert res.exit_code == 2 and "cannot build Docker '1.4.1'" in res.output
    bare = make_archive(tmp_path / "bare.tar.gz", None)
    res = runner.invoke(main, ["engine", "build", "1.5.0", "--source", str(bare)])
    assert res.exit_code == 2 and "carries no commit id" in res.output
    assert "Traceback" not in res.output
    fake_engine_build(store.build_dir("1.5.0", COMMIT))
    res = runner.invoke(main, ["engine", "list"])
    assert res.exit_code == 0 and "a8a31ef" in res.output and "docker-1.5.0-a8a31ef" in res.output
    res = runner.invoke(main, ["engine", "build", "--help"])
    assert "labctl engine build 1.5.0 --source" in res.output


# -- downloads (a real HTTP server on 127.0.0.1, no internet) -----------------------------------


@pytest.fixture()
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    served = tmp_path / "served"
    served.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=served))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_url_is_downloaded_once_checked_and_a_bad_download_is_not_kept(
    engine_cache: Path, http_dir: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # 127.0.0.1 directly, whatever the CI's proxy
    served, base = http_dir
    known = versions.known_version("1.5.0")
    make_archive(served / "good.tar.gz", COMMIT)
    got = source.resolve_source(f"{base}/good.tar.gz", known, content=False)
    assert got.path.parent == source.downloads_dir() and got.origin == f"{base}/good.tar.gz"
    (served / "good.tar.gz").unlink()  # the second time comes from the cache
    assert source.resolve_source(f"{base}/good.tar.gz", known, content=False).path == got.path
    make_archive(served / "other.tar.gz", "2" * 40)
    with pytest.raises(ConfigError, match="is commit 2222"):
        source.resolve_source(f"{base}/other.tar.gz", known)
    assert sorted(p.name for p in source.downloads_dir().iterdir()) == [got.path.name]
    with pytest.raises(ConfigError, match=r"cannot download .*/missing\.tar\.gz"):
        source.resolve_source(f"{base}/missing.tar.gz", known)
