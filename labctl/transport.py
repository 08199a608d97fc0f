"""SSH transport over paramiko: connect with strict host-key checking, run, put, get.

Host keys are checked against the host's known_hosts file; an unknown key is refused unless the
host record explicitly opts in (``accept_new_host_key``), in which case the key is recorded.
Every paramiko/socket failure becomes a typed :class:`~labctl.errors.TransportError` that names
the host and says what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import paramiko

from .errors import (
    AuthenticationFailed,
    CommandTimeout,
    HostKeyMismatch,
    HostNotAnswering,
    HostUnreachable,
    LabctlError,
    ProbeError,
    TransportError,
    UnknownHostKey,
)
from .files import unsafe_reason
from .hosts import HostRecord

T = TypeVar("T")


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class _RecordNewKey(paramiko.MissingHostKeyPolicy):
    """Opt-in policy: accept an unknown key and append it to the host's known_hosts file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="ascii") as fh:
            fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


class _Refuse(paramiko.MissingHostKeyPolicy):
    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise paramiko.SSHException(f"unknown host key {key.get_name()} for {hostname}")


#: what paramiko and the socket raise when a connection fails or drops: paramiko also raises a
#: bare EOFError (sshd closed the connection mid-handshake: restarting, MaxStartups)
SSH_FAILURES = (paramiko.SSHException, OSError, EOFError)


def load_private_key(host: HostRecord) -> paramiko.PKey:
    """Load the host's key file whatever its type and format (OpenSSH, PEM; RSA, ed25519...)."""
    assert host.key_file is not None
    with contextlib.suppress(OSError):  # a missing key is the loader's error
        mode = host.key_file.stat().st_mode & 0o777
        if mode & 0o077:
            raise AuthenticationFailed(
                f"private key {host.key_file} is open to other users (mode {mode:04o}); ssh "
                "refuses such a key too",
                host=host.name,
                hint=f"chmod 600 {host.key_file}",
            )
    try:
        return paramiko.PKey.from_path(host.key_file)
    except paramiko.PasswordRequiredException as exc:
        raise AuthenticationFailed(
            f"private key {host.key_file} is protected by a passphrase",
            host=host.name,
            hint="use a key without passphrase for the lab, or an unlocked copy",
        ) from exc
    except (OSError, ValueError, paramiko.SSHException) as exc:
        raise AuthenticationFailed(
            f"cannot load private key {host.key_file} ({exc})",
            host=host.name,
            hint="check ansible_ssh_private_key_file in the inventory",
        ) from exc


def _known_hosts_name(host: HostRecord) -> str:
    return host.address if host.port == 22 else f"[{host.address}]:{host.port}"


def _connect_error(host: HostRecord, known: Path, exc: Exception) -> TransportError:
    """The one-line error for a failed SSH connect, by what paramiko or the socket said."""
    cls: type[TransportError]
    name, where = _known_hosts_name(host), f"{host.address}:{host.port}"
    if isinstance(exc, paramiko.BadHostKeyException):
        cls, what = HostKeyMismatch, f"host key of {name} does not match {known}"
        hint = "if the host was rebuilt, remove its old entry from that file"
    elif isinstance(exc, paramiko.AuthenticationException):
        cls, what = AuthenticationFailed, f"SSH login as {host.user} refused ({exc})"
        hint = "check ansible_user and ansible_ssh_private_key_file in the inventory"
    elif isinstance(exc, paramiko.SSHException) and "unknown host key" in str(exc):
        cls, what = UnknownHostKey, f"host key of {name} is not in {known}"
        hint = "add it (ssh-keyscan) or pass --accept-new-host-keys to trust it"
    elif isinstance(exc, paramiko.SSHException):
        cls, what = HostNotAnswering, f"SSH handshake with {where} failed ({exc})"
        hint = "check that sshd runs there"
    elif isinstance(exc, EOFError):
        cls, what = HostNotAnswering, f"SSH server at {where} closed the connection mid-handshake"
        hint = "sshd may be restarting or refusing new connections (MaxStartups); run again"
    else:
        cls, what = HostUnreachable, f"cannot connect to {where} ({exc})"
        hint = "check the address and port in the inventory and that the host is up"
    return cls(what, host=host.name, hint=hint)


class SSHTransport:
    """One SSH connection to one host. Use as a context manager."""

    def __init__(self, host: HostRecord, *, connect_timeout: float = 10.0) -> None:
        self.host = host
        self.connect_timeout = connect_timeout
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    # -- connection -------------------------------------------------------------------------
    def connect(self) -> SSHTransport:
        host = self.host
        known = host.known_hosts or Path.home() / ".ssh" / "known_hosts"
        unsafe = unsafe_reason(known)
        if unsafe is not None:
            raise UnknownHostKey(
                f"known_hosts file {known}: {unsafe}: another user could put any key there",
                host=host.name,
                hint="fix it (chown, chmod go-w) or point labctl_known_hosts at a file of yours",
            )
        client = paramiko.SSHClient()
        if known.exists():
            try:
                client.load_host_keys(str(known))
            except (OSError, paramiko.SSHException) as exc:
                raise UnknownHostKey(
                    f"cannot read known_hosts file {known} ({exc})",
                    host=host.name,
                    hint="fix or remove that file",
                ) from exc
        client.set_missing_host_key_policy(
            _RecordNewKey(known) if host.accept_new_host_key else _Refuse()
        )
        pkey = load_private_key(host) if host.key_file else None
        try:
            client.connect(
                host.address,
                port=host.port,
                username=host.user,
                pkey=pkey,
                password=host.password,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                allow_agent=host.key_file is None,
                look_for_keys=host.key_file is None,
            )
        except SSH_FAILURES as exc:
            client.close()
            raise _connect_error(host, known, exc) from exc
        self._client = client
        return self

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> SSHTransport:
        return self.connect() if self._client is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def sftp(self) -> paramiko.SFTPClient:
        """One SFTP session for the connection's life: a host that cannot fork (a fork bomb
        under way) still answers reads on it, where every new session needs a new process."""
        if self._sftp is None:
            self._sftp = self.client.open_sftp()
        return self._sftp

    @property
    def client(self) -> paramiko.SSHClient:
        if self._client is None:
            raise TransportError("not connected", host=self.host.name)
        return self._client

    # -- commands ---------------------------------------------------------------------------
    def run(
        self, command: str, *, timeout: float = 60.0, stdin: bytes | None = None
    ) -> CommandResult:
        """Run ``command`` with the remote shell; never raises on a non-zero exit."""
        try:
            chan = self.client.get_transport().open_session()  # type: ignore[union-attr]
            chan.settimeout(timeout)
            chan.exec_command(command)
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            deadline = time.monotonic() + timeout
            while True:
                if chan.recv_ready():
                    out += chan.recv(65536)
                elif chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                elif chan.exit_status_ready():
                    break
                elif time.monotonic() > deadline:
                    chan.close()
                    raise CommandTimeout(
                        f"command did not finish within {timeout:.0f} s: {command[:80]}",
                        host=self.host.name,
                    )
                else:
                    time.sleep(0.01)
            # the exit status may come before the last output: read on until EOF (bounded)
            tail_end = time.monotonic() + 5.0
            while not chan.eof_received and time.monotonic() < tail_end:
                if chan.recv_ready():
                    out += chan.recv(65536)
                elif chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                else:
                    time.sleep(0.01)
            while chan.recv_ready():
                out += chan.recv(65536)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            status = chan.recv_exit_status()
            chan.close()
        except SSH_FAILURES as exc:
            raise HostUnreachable(
                f"SSH connection lost while running a command ({exc})", host=self.host.name
            ) from exc
        return CommandResult(
            command, status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        )

    def free_kib(self, folder: str) -> int | None:
        """Free KiB of the filesystem holding ``folder`` on the host (None: unknown)."""
        try:
            res = self.run(f"df -Pk {shlex.quote(folder)}", timeout=30)
            return int(res.stdout.splitlines()[-1].split()[3])
        except (LabctlError, IndexError, ValueError):
            return None

    def put(self, local: Path, remote: str, *, mode: int = 0o644) -> str:
        """Copy a file to the host and verify its sha256 there; returns the checksum.

        The copy goes to ``remote.part``, made new (O_EXCL: a link or file left there is
        removed first, never written through), then renamed over ``remote``."""
        data = local.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        try:
            sftp = self.sftp
            tmp = f"{remote}.part"
            with contextlib.suppress(FileNotFoundError):
                sftp.remove(tmp)
            with sftp.open(tmp, "wx") as fh:
                fh.write(data)
            sftp.chmod(tmp, mode)
            sftp.posix_rename(tmp, remote)
        except SSH_FAILURES as exc:
            folder = remote.rsplit("/", 1)[0] or "/"
            free = self.free_kib(folder)
            with contextlib.suppress(*SSH_FAILURES):  # a cut copy takes no room
                self.sftp.remove(f"{remote}.part")
            if free is not None and free * 1024 < len(data) + 64 * 1024:
                raise ProbeError(
                    f"no room for {local.name} ({len(data) // 1024} KiB) in {folder}: the disk "
                    f"holding it is full ({free} KiB free)",
                    host=self.host.name,
                    hint="free space there (or set labctl_host_dir to a roomier place), then "
                    "run again",
                ) from exc
            raise TransportError(
                f"cannot copy {local.name} to {remote} ({exc})",
                host=self.host.name,
                hint="check free space and permissions there",
            ) from exc
        remote_digest = self.sha256(remote)
        if remote_digest != digest:
            raise TransportError(
                f"checksum of {remote} is {remote_digest}, expected {digest}",
                host=self.host.name,
                hint="the copy was corrupted; run again",
            )
        return digest

    def sha256(self, remote: str) -> str | None:
        """The sha256 of a remote file, read over SFTP (needs no tool on the host)."""
        h = hashlib.sha256()
        try:
            with self.sftp.open(remote, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
        except FileNotFoundError:
            return None
        except SSH_FAILURES as exc:
            raise TransportError(f"cannot read {remote} ({exc})", host=self.host.name) from exc
        return h.hexdigest()

    def _sftp_call(self, what: str, remote: str, call: Callable[[], T]) -> T:
        """An SFTP call whose answer from the host (no such file, permission denied) is an
        OSError, and whose lost connection is HostUnreachable."""
        try:
            return call()
        except OSError as exc:
            transport = self._client.get_transport() if self._client else None
            if transport is not None and transport.is_active():
                raise  # the host's answer about the path
            raise HostUnreachable(
                f"SSH connection lost ({what} {remote}: {exc})", host=self.host.name
            ) from exc
        except SSH_FAILURES as exc:
            raise HostUnreachable(
                f"SSH connection lost ({what} {remote}: {exc})", host=self.host.name
            ) from exc

    def lstat(self, remote: str) -> paramiko.SFTPAttributes:
        """The host's lstat of ``remote`` (uid, mode), over SFTP; OSError from the host."""
        return self._sftp_call("lstat", remote, lambda: self.sftp.lstat(remote))

    def mkdir(self, remote: str, mode: int = 0o700) -> None:
        """mkdir on the host, over SFTP (fails when anything is there); OSError from the host."""
        self._sftp_call("mkdir", remote, lambda: self.sftp.mkdir(remote, mode))

    def realpath(self, remote: str) -> str:
        """``remote`` with every symlink resolved, by the host (SFTP's realpath)."""
        return self._sftp_call("realpath", remote, lambda: self.sftp.normalize(remote))

    def exists(self, remote: str) -> bool:
        """Whether a remote path exists, asked over SFTP (no new process on the host)."""
        try:
            self.sftp.stat(remote)
        except FileNotFoundError:
            return False
        except SSH_FAILURES as exc:
            raise HostUnreachable(f"cannot stat {remote} ({exc})", host=self.host.name) from exc
        return True

    def read(self, remote: str) -> bytes | None:
        """Content of a remote file, or None when it does not exist."""
        try:
            with self.sftp.open(remote, "rb") as fh:
                return bytes(fh.read())
        except FileNotFoundError:
            return None
        except SSH_FAILURES as exc:
            raise HostUnreachable(f"cannot read {remote} ({exc})", host=self.host.name) from exc


def quote(arg: str) -> str:
    return shlex.quote(arg)
