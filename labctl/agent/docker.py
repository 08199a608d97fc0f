# -*- coding: utf-8 -*-
"""The docker command line client, and the daemon's process (pid, command line, mount
namespace)."""

from __future__ import absolute_import, division, print_function

import os

from .consts import CLEANUP_CMD_TIMEOUT, NAME_PREFIX
from .osparse import parse_ps_names
from .text import CmdResult, read_text, run_cmd, to_int, version_tuple, which


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
        """All containers as [(id, [names])]; None when docker cannot tell."""
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
    (a unit with MountFlags=slave: the article's CentOS 7.0), None when it cannot be told."""
    if not pid:
        return None
    init_ns, daemon_ns = mount_ns(1), mount_ns(pid)
    if not init_ns or not daemon_ns:
        return None
    return "host" if init_ns == daemon_ns else "private"
