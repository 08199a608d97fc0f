"""The paramiko transport against a real lab sshd: commands, copies, checksums, errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from labctl.errors import CommandTimeout, HostKeyMismatch, UnknownHostKey
from labctl.transport import SSHTransport
from tests.helpers import host_named, labctl

pytestmark = pytest.mark.lab


def test_run_captures_status_stdout_stderr_and_stdin(lab: Any) -> None:
    with SSHTransport(host_named(lab, "bookworm")) as t:
        res = t.run("echo out; echo err >&2; exit 3")
        assert (res.exit_status, res.stdout, res.stderr) == (3, "out\n", "err\n")
        assert t.run("cat", stdin=b"hello").stdout == "hello"
        big = t.run("head -c 3000000 /dev/zero | tr '\\0' x")
        assert len(big.stdout) == 3_000_000
        with pytest.raises(CommandTimeout):
            t.run("sleep 5", timeout=0.5)


def test_put_verifies_checksum_and_read(lab: Any, tmp_path: Path) -> None:
    local = tmp_path / "blob"
    local.write_bytes(bytes(range(256)) * 1000)
    with SSHTransport(host_named(lab, "bookworm")) as t:
        digest = t.put(local, "/tmp/labctl-blob", mode=0o600)
        assert t.run("sha256sum /tmp/labctl-blob").stdout.split()[0] == digest
        assert t.run("stat -c %a /tmp/labctl-blob").stdout.strip() == "600"
        assert t.read("/tmp/labctl-blob") == local.read_bytes()
        assert t.read("/tmp/does-not-exist") is None
        t.run("rm -f /tmp/labctl-blob")


def _forged_known_hosts(lab: Any, folder: Path) -> Path:
    """A known_hosts file giving bookworm's port trixie's key: a man in the middle, as far
    as anyone can tell."""
    host, other = host_named(lab, "bookworm"), host_named(lab, "trixie")
    theirs, mine = f"[127.0.0.1]:{other.port} ", f"[127.0.0.1]:{host.port} "
    assert host.known_hosts is not None
    lines = [ln for ln in host.known_hosts.read_text().splitlines() if ln.startswith(theirs)]
    assert lines
    forged = folder / "known_hosts"
    forged.write_text("".join(ln.replace(theirs, mine) + "\n" for ln in lines))
    return forged


def test_changed_host_key_is_refused(lab: Any, tmp_path: Path) -> None:
    host = host_named(lab, "bookworm")
    forged = _forged_known_hosts(lab, tmp_path)
    with pytest.raises(HostKeyMismatch) as err:
        SSHTransport(dataclasses.replace(host, known_hosts=forged)).connect()
    assert err.value.line().startswith("bookworm: host key of [127.0.0.1]:")
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(UnknownHostKey):
        SSHTransport(dataclasses.replace(host, known_hosts=empty)).connect()


def test_a_changed_host_key_while_provisioning_is_one_ssh_line(lab: Any, tmp_path: Path) -> None:
    """ansible's unreachable host with ssh's "@@@" banner, cut at 300 characters, exit 6,
    was the old line; now it says what happened, exit 3 as for the probe."""
    host = host_named(lab, "bookworm")
    forged = _forged_known_hosts(lab, tmp_path)
    assert host.known_hosts is not None
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        Path(lab.inventory).read_text().replace(str(host.known_hosts), str(forged))
    )
    proc = labctl(
        "provision", "-i", str(inventory), "--limit", "bookworm", "--results", str(tmp_path / "r")
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "@@@" not in proc.stderr
    assert "bookworm: unreachable: ssh refused its host key" in proc.stderr, proc.stderr
