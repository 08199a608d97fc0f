"""The playbooks pass ansible-lint; the article inventory fails fast with what to fill in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from labctl.cli import main
from labctl.hosts import HostRecord
from labctl.provision import parse_extra_vars
from labctl.provision_vars import preflight
from tests.helpers import ROLES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("target", ["site.yml", "collection"])
def test_ansible_lint_production_profile_is_clean(target: str) -> None:
    """site.yml, and the collection of its roles linted as a collection (galaxy.yml, argument
    specs, the roles), with the collection found where labctl's runs find it."""
    from labctl.ansible import collections_path
    from labctl.paths import collection_dir

    lint = Path(sys.executable).with_name("ansible-lint")
    if not lint.exists() and shutil.which("ansible-lint") is None:
        pytest.fail("ansible-lint is missing: install the dev extras (bash scripts/setup.sh deps)")
    playbooks = ROOT / "playbooks"
    cwd, args = (
        (playbooks, ["site.yml"]) if target == "site.yml" else (collection_dir(playbooks), [])
    )
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": collections_path(playbooks)}
    proc = subprocess.run(
        [str(lint), "--offline", "--profile", "production", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Profile 'production' was required, and it passed" in proc.stdout + proc.stderr


def test_article_inventory_lists_what_to_fill_in_and_runs_nothing() -> None:
    res = CliRunner().invoke(main, ["provision", "-i", str(ROOT / "inventories" / "article.ini")])
    assert res.exit_code == 2  # the inventory lacks what the play needs: README's 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    for name in ("centos66", "centos70", "ubuntu1404"):
        line = next(ln for ln in lines if ln.startswith(f"{name}: fill in"))
        assert "ansible_host" in line
        assert "docker_engine_binary_url or docker_engine_binary_src" in line
        assert "docker_engine_binary_sha256" in line
    assert "Traceback" not in res.output


def test_preflight_accepts_a_complete_binary_host() -> None:
    host = HostRecord(
        "h",
        "127.0.0.1",
        vars={
            "ansible_host": "127.0.0.1",
            "docker_engine_method": "binary",
            "docker_engine_binary_url": "https://example.invalid/docker-1.5.0",
            "docker_engine_binary_sha256": "a" * 64,
        },
    )
    assert preflight(host) == []
    bad = HostRecord("h", "127.0.0.1", vars={"docker_engine_method": "tarball"})
    assert preflight(bad) == ["docker_engine_method: distro or binary, not 'tarball'"]


def test_extra_vars(tmp_path: Path) -> None:
    f = tmp_path / "v.yml"
    f.write_text("docker_storage_opts: [size=1G]\n")
    got = parse_extra_vars(["a=1", "b=true", "c=text", "d=[1, 2]", f"@{f}"])
    assert got == {"a": 1, "b": True, "c": "text", "d": [1, 2], "docker_storage_opts": ["size=1G"]}


def test_secret_values_and_redaction(tmp_path: Path) -> None:
    from labctl.provision import REDACTED, redact_tree, secret_values

    found = secret_values(
        {
            "ansible_become_password": "hunter22",
            "ansible_ssh_pass": "pw1",
            "ansible_ssh_private_key_file": "/k/id",
            "api_token": "",
            "docker_engine_version": "1.5.0",
        }
    )
    assert found == ["hunter22", "pw1"]
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "extravars").write_text('{"ansible_become_password": "hunter22"}')
    (tmp_path / "other.txt").write_text("nothing here")
    assert redact_tree(tmp_path, found) == 1
    assert (
        tmp_path / "env" / "extravars"
    ).read_text() == f'{{"ansible_become_password": "{REDACTED}"}}'


SERVICE_SCRIPT = ROLES / "docker_engine" / "files" / "docker_engine.sh"


@pytest.mark.parametrize("unit", ["docker.service", "docker.socket"])
def test_the_1_5_0_units_are_the_ones_docker_shipped(engine_source: Path, unit: str) -> None:
    """docker_engine.sh carries Docker 1.5.0's own systemd units verbatim (MountFlags=slave is
    the article's CentOS 7.0 finding): compare them with contrib/init/systemd in the source."""
    import tarfile

    with tarfile.open(engine_source) as tar:
        member = tar.extractfile(f"moby-1.5.0/contrib/init/systemd/{unit}")
        assert member is not None
        shipped = member.read().decode()
    proc = subprocess.run(
        ["sh", str(SERVICE_SCRIPT), "--print-upstream", unit, "--version", "1.5.0"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == shipped
    if unit == "docker.service":
        assert "MountFlags=slave" in proc.stdout


#: era init files from Docker 1.5.0's own source archive: name -> path in the archive
FROM_THE_ARCHIVE = {
    "sysvinit-docker": "contrib/init/sysvinit-redhat/docker",
    "upstart": "contrib/init/upstart/docker.conf",
}
#: era init files from the repositories that packaged them: name -> git blob id (PROVENANCE.md)
FROM_THEIR_PACKAGES = {
    "sysvinit-epel": "81913084a334abbdfaadc443044967bbe3209588",
    "systemd-centos": "73bb6d401ccf97f884300025d98cfb63c67bf281",
}
ERA_DIR = SERVICE_SCRIPT.parent / "era"


def git_blob_id(data: bytes) -> str:
    """What `git hash-object` prints for a file holding ``data``."""
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def era(name: str) -> bytes:
    proc = subprocess.run(
        ["sh", str(SERVICE_SCRIPT), "--print-era", name], capture_output=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("name", sorted(FROM_THE_ARCHIVE))
def test_era_init_files_from_the_1_5_0_source_are_verbatim(engine_source: Path, name: str) -> None:
    import tarfile

    with tarfile.open(engine_source) as tar:
        member = tar.extractfile(f"moby-1.5.0/{FROM_THE_ARCHIVE[name]}")
        assert member is not None
        assert era(name) == member.read()


@pytest.mark.parametrize("name", sorted(FROM_THEIR_PACKAGES))
def test_era_init_files_from_their_packages_are_verbatim(name: str) -> None:
    """EPEL's docker-io 1.5.0-1 script and CentOS 7's docker-1.5.0-11 unit: the same git blob as
    the file in the public repository that packaged it (PROVENANCE.md names commit and path)."""
    assert git_blob_id(era(name)) == FROM_THEIR_PACKAGES[name]


def test_the_rhel_functions_file_is_centos_6_6s() -> None:
    data = (ERA_DIR / "initscripts-9.03.46-functions").read_bytes()
    assert git_blob_id(data) == "e857864acd7155a24bd6fba5ef0d3975d710011b"


def test_the_two_sysv_scripts_differ_in_the_one_line_that_decides_the_6_6_finding() -> None:
    epel, docker = era("sysvinit-epel").decode(), era("sysvinit-docker").decode()
    start = [ln.strip() for ln in epel.splitlines() if "$exec -d" in ln]
    assert start == ["$exec -d $other_args $DOCKER_STORAGE_OPTIONS &>> $logfile &"]
    assert '"$unshare" -m -- $exec -d $other_args &>> $logfile &' in docker
    assert "unshare" not in epel
    for text in (epel, docker):
        assert ". /etc/rc.d/init.d/functions" in text and 'exec="/usr/bin/$prog"' in text
    assert "MountFlags=slave" in era("systemd-centos").decode()


def test_service_scripts_are_posix_sh() -> None:
    for script in ROLES.glob("*/files/*.sh"):
        proc = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, (script, proc.stderr)


def test_forks_default_every_host_up_to_the_cap() -> None:
    from labctl.errors import ConfigError
    from labctl.fanout import FORKS_CAP, forks_for

    assert forks_for(0) == 1 and forks_for(3) == 3 and forks_for(30) == 30
    assert forks_for(1000) == FORKS_CAP
    assert forks_for(1000, 7) == 7
    with pytest.raises(ConfigError):
        forks_for(3, 0)


def test_playbook_digest_follows_every_file(tmp_path: Path) -> None:
    """A warm host is provisioned again when the playbooks change (another labctl)."""
    from labctl.paths import collection_dir, playbooks_dir
    from labctl.provision import tree_digest

    copy = tmp_path / "playbooks"
    shutil.copytree(playbooks_dir(), copy)
    first = tree_digest(copy)
    assert first == tree_digest(playbooks_dir()) and len(first) == 64
    roles = collection_dir(copy) / "roles"  # the collection's roles are in the digest
    (roles / "labctl_warm" / "files" / "warm_check.sh").write_text("echo cold\n")
    assert tree_digest(copy) != first


def test_warm_check_script_says_why(tmp_path: Path) -> None:
    """The raw warm check in a real shell with a fake docker on PATH: warm only when the stamp,
    the engine's version and its storage driver all match; a cold host forgets its stamp."""
    from labctl.paths import collection_dir

    script = (collection_dir() / "roles/labctl_warm/files/warm_check.sh").read_text()
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "docker").write_text(
        "#!/bin/sh\ncase $1 in version) printf 'Client:\\n Version: 1\\nServer:\\n"
        " Engine:\\n  Version:  20.10.24\\n';; info) echo ' Storage Driver: overlay2';; esac\n"
    )
    (fake / "docker").chmod(0o755)
    stamp = tmp_path / "provisioned"

    def check(fp: str, version: str = "", driver: str = "", keep: str = "") -> str:
        env = {"PATH": f"{fake}:/usr/bin:/bin", "STAMP": str(stamp), "FP": fp,
               "WANT_VERSION": version, "WANT_DRIVER": driver, "KEEP": keep}  # fmt: skip
        proc = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert check("abc") == "cold: not provisioned this way before"
    stamp.write_text("abc\n")
    assert (
        check("abc", "20.10", "overlay2")
        == "warm: Docker 20.10.24 on overlay2, provisioned as asked"
    )
    assert check("abc").startswith("warm:")
    assert check("abc", "26.1", keep="1") == "cold: the engine is 20.10.24, not 26.1"
    assert stamp.exists()  # --check keeps it
    assert check("abc", "", "vfs") == "cold: the storage driver is overlay2, not vfs"
    assert not stamp.exists()
