# -*- coding: utf-8 -*-
"""The docker command line client, and the daemon's process (pid, command line, mount
namespace)."""

from __future__ import absolute_import, division, print_function

import json
import os
import socket

from .consts import CLEANUP_CMD_TIMEOUT, NAME_PREFIX
from .osparse import parse_ps_names
from .text import CmdResult, read_text, run_cmd, to_int, to_text, version_tuple, which


def engine_socket_path():
    """The engine's unix socket (DOCKER_HOST unix://..., else /var/run/docker.sock); None
    when DOCKER_HOST points elsewhere (tcp)."""
    host = os.environ.get("DOCKER_HOST") or ""
    if host.startswith("unix://"):
        return host[len("unix://"):]
    if host:
        return None
    return "/var/run/docker.sock"


def engine_request(method, path, timeout=10.0, sock_path=None):
    """One HTTP/1.0 request to the engine over its unix socket, without forking.

    Returns (status, body text); raises socket.error/OSError/ValueError when it cannot.
    """
    sock_path = sock_path or engine_socket_path()
    if not sock_path:
        raise ValueError("DOCKER_HOST is not a unix socket")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(sock_path)
        req = "%s %s HTTP/1.0\r\nHost: docker\r\nContent-Length: 0\r\n\r\n" % (method, path)
        s.sendall(req.encode("ascii"))
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    finally:
        s.close()
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = to_text(head.split(b"\r\n")[0])
    parts = status_line.split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError("not an HTTP answer: %r" % status_line[:60])
    return int(parts[1]), to_text(body)


class Docker(object):
    """The `docker` CLI on PATH."""

    def __init__(self, path=None):
        self.path = path if path is not None else which("docker")
        self.server_version = None

    def run(self, args, timeout=60.0, stdin_file=None):
        if not self.path:
            return CmdResult(["docker"] + list(args), 127, "", "docker: not found", missing=True)
        return run_cmd([self.path] + list(args), timeout=timeout, stdin_file=stdin_file)

    def supports(self, minimum):
        vt = version_tuple(self.server_version)
        return vt is not None and vt >= minimum

    def container_names(self, timeout=CLEANUP_CMD_TIMEOUT):
        """All containers as [(id, [names])]; None when docker cannot tell. The engine's
        socket first (no fork, no Go client: a tenth of the CPU), then the CLI."""
        rows = engine_container_names(timeout)
        if rows is not None:
            return rows
        res = self.run(["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}"], timeout)
        if not res.ok:
            res = self.run(["ps", "-a", "--no-trunc"], timeout)
            if not res.ok:
                return None
        return parse_ps_names(res.out)

    def remove_container(self, name, timeout=CLEANUP_CMD_TIMEOUT):
        if not name.startswith(NAME_PREFIX):  # never touch anything else
            return False
        res = self.run(["rm", "-f", "-v", name], timeout)
        return res.ok


DAEMON_PID_FILES = ("/var/run/docker.pid", "/run/docker.pid")


_CLIENT_COMMANDS = frozenset([
    "attach", "build", "commit", "cp", "create", "diff", "events", "exec", "export", "history",
    "images", "import", "info", "inspect", "kill", "load", "login", "logout", "logs", "pause",
    "port", "ps", "pull", "push", "rename", "restart", "rm", "rmi", "run", "save", "search",
    "start", "stats", "stop", "tag", "top", "unpause", "version", "wait"])


def is_daemon_cmdline(args):
    """dockerd, or the single binary of 1.x run as a daemon (`docker -d`, `docker daemon`):
    -d counts only before a client command (`docker run -d` is not a daemon)."""
    if not args or not args[0]:
        return False
    name = os.path.basename(args[0])
    if name == "dockerd":
        return True
    if name != "docker":
        return False
    for arg in args[1:]:
        if arg in ("-d", "--daemon", "--daemon=true", "daemon"):
            return True
        if arg in _CLIENT_COMMANDS:
            return False
    return False


def find_daemon_pid():
    """The engine daemon's pid: its pid file, else the first daemon found in /proc."""
    for path in DAEMON_PID_FILES:
        pid = to_int(read_text(path))
        if pid and is_daemon_cmdline((read_text("/proc/%d/cmdline" % pid) or "").split("\0")):
            return pid
    try:
        entries = sorted(int(e) for e in os.listdir("/proc") if e.isdigit())
    except OSError:
        return None
    for pid in entries:
        if is_daemon_cmdline((read_text("/proc/%d/cmdline" % pid) or "").split("\0")):
            return pid
    return None


def mount_ns(pid):
    """The mount namespace of a process ('mnt:[4026531840]'), or None."""
    try:
        return os.readlink("/proc/%s/ns/mnt" % pid)
    except (OSError, AttributeError):
        return None


def daemon_mount_namespace(pid):
    """'host' when the daemon shares init's mount namespace, 'private' when it has its own
    (MountFlags=slave or unshare -m: the article's CentOS 7.0), None when it cannot be told."""
    if not pid:
        return None
    init_ns, daemon_ns = mount_ns(1), mount_ns(pid)
    if not init_ns or not daemon_ns:
        return None
    return "host" if init_ns == daemon_ns else "private"


def engine_container_names(timeout=CLEANUP_CMD_TIMEOUT):
    """[(id, [names])] of every container, from the engine's socket (API 1.17, Docker 1.5, to
    today: /containers/json?all=1, names with a leading "/"); None when the socket cannot say."""
    try:
        status, body = engine_request("GET", "/containers/json?all=1", timeout)
        listed = json.loads(body) if status == 200 else None
    except (socket.error, OSError, ValueError):
        return None
    if not isinstance(listed, list):
        return None
    rows = []
    for c in listed:
        if not isinstance(c, dict) or not c.get("Id"):
            continue
        names = [str(n).lstrip("/") for n in (c.get("Names") or []) if n]
        rows.append((str(c["Id"]), [n for n in names if "/" not in n]))
    return rows
