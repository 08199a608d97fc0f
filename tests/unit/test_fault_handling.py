"""Fault handling in pure logic: Ctrl-C while hosts are followed, failed writes, host files."""

from __future__ import annotations

import _thread
import errno
import json
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from labctl import probe
from labctl.errors import HostNotAnswering, ResultError
from labctl.hosts import HostRecord
from labctl.results import SCHEMA_VERSION, load_host_file, write_problem
from labctl.transport import SSHTransport


def test_ctrl_c_returns_at_once_while_hosts_block() -> None:
    release = threading.Event()

    def stuck(host: HostRecord) -> probe.HostOutcome:
        release.wait(30)  # an SSH call that does not come back
        return probe.HostOutcome(host.name)

    hosts = [HostRecord(name=f"h{i}", address="127.0.0.1") for i in range(3)]
    # a run started in the background (`cmd &` in a script) inherits SIGINT ignored, and then
    # interrupt_main does nothing: Ctrl-C's handler for this test, as in a terminal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Timer(0.3, _thread.interrupt_main).start()
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            probe._parallel(stuck, hosts, 8)
        assert time.monotonic() - t0 < 1.5
        assert probe.STOP.is_set()
    finally:
        release.set()
        probe.STOP.clear()
        signal.signal(signal.SIGINT, previous)


def test_write_failures_are_one_line_per_host(tmp_path: Path) -> None:
    err = write_problem(OSError(errno.ENOSPC, "No space left on device"), tmp_path / "x.json",
                        host="bookworm", hint="then `labctl collect R`")  # fmt: skip
    assert isinstance(err, ResultError) and err.exit_code == 5
    assert err.line() == (
        f"bookworm: cannot write {tmp_path / 'x.json'} (no space left on the results disk); "
        "then `labctl collect R`"
    )
    denied = write_problem(OSError(errno.EACCES, "Permission denied"), tmp_path, hint="fix it")
    assert denied.line() == f"cannot write {tmp_path} (permission denied); fix it"


def _host(path: Path, **changes: object) -> Path:
    data = {"schema": SCHEMA_VERSION, "host": path.stem, "run_id": "r1", "status": "ok",
            "facts": {}, "labels": {}, "experiments": [{"name": "disk", "status": "ok",
            "metrics": {"written_bytes": 10, "host_write_ok": True}}]}  # fmt: skip
    data.update(changes)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({}, None),
        ({"host": 42}, "has host 42"),
        ({"host": "bullseye"}, "names host 'bullseye', not 'bookworm'"),
        ({"run_id": "r2"}, "belongs to run 'r2'"),
        ({"experiments": "x"}, "experiments of type str"),
        ({"experiments": [{"name": "disk", "status": "ok", "metrics": [1]}]}, "disk.metrics"),
        (
            {"experiments": [{"name": "disk", "status": "ok", "metrics": {"written_bytes": "a"}}]},
            "disk.written_bytes = 'a', expected a number",
        ),
        (
            {"experiments": [{"name": "disk", "status": "ok", "metrics": {"host_write_ok": 1}}]},
            "disk.host_write_ok = 1, expected true or false",
        ),
    ],
)
def test_host_file_identity_and_types(tmp_path: Path, changes: dict, needle: str | None) -> None:  # type: ignore[type-arg]
    res = load_host_file(_host(tmp_path / "bookworm.json", **changes), "r1")
    assert res.host == "bookworm"  # always the file's name: never a column for another host
    if needle is None:
        assert res.ok, res.error
    else:
        assert res.error is not None and res.error["kind"] == "result"
        assert needle in res.error["message"], res.error["message"]


def test_sshd_closing_mid_handshake_is_a_retryable_one_liner() -> None:
    """cloud-init restarts sshd while it boots: a connect that meets the restart gets EOF from
    paramiko, which must be the retryable HostNotAnswering, not an EOFError out of the CLI."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def banner_then_close() -> None:
        conn, _ = server.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n")
        # FIN, not RST: a close with the client's unread KEXINIT queued would reset instead
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(4096):
            pass
        conn.close()

    peer = threading.Thread(target=banner_then_close, daemon=True)
    peer.start()
    host = HostRecord(name="deb12", address="127.0.0.1", port=port, user="root",
                      password="x")  # fmt: skip
    try:
        with pytest.raises(HostNotAnswering) as caught:
            SSHTransport(host, connect_timeout=5.0).connect()
    finally:
        peer.join(5)
        server.close()
    assert caught.value.line().startswith(
        f"deb12: SSH server at 127.0.0.1:{port} closed the connection mid-handshake"
    )
