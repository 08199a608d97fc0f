# -*- coding: utf-8 -*-
"""A resource experiment's container, from the host: the files its script keeps on its /dev,
what its log says, and ContainerView (its first process, its cgroup, its writer, read through
/proc without forking).  The scripts themselves are the resources' own (the res* modules)."""

from __future__ import absolute_import, division, print_function

import os
import re
import time

from .cgroups import (
    cgroup_dir,
    cgroup_view,
    own_cgroup,
    parse_cgroup_mounts,
    parse_proc_cgroup,
    read_cg_number,
)
from .image import find_tool
from .oom import classify_container_error
from .runstate import proc_start_time
from .sampling import find_child, parse_proc_io, parse_proc_stat_fields
from .text import monotonic, one_line, read_text, run_cmd, to_int, which

BIG_COUNT = 2000000000  # "no cap" for the shell loops (fits every shell's arithmetic)
STATE_FILE = "/dev/labctl-state"   # the container's /dev is a tmpfs: writable even when the
COUNT_FILE = "/dev/labctl-count"   # disk is full; the host reads it via /proc/PID/root
SOAK_FILE = "/dev/labctl-soak"     # processes, exhaust mode: the fork retry loop
LOW_FREE_PIDS = 64  # fewer free pids at the peak: stop the container by a signal, not the engine


def hold_script(sleep_s):
    """How a script ends: STATE_FILE says it is done, and the shell becomes a sleep (no fork),
    so the container stays at its peak until the agent has checked the host and killed it."""
    return "echo done > %s; exec sleep %d" % (STATE_FILE, sleep_s)


def parse_container_log(text):
    """What the container's own output says: {'rc', 'count', 'dirs', 'dd_bytes', 'error'}."""
    out = {"rc": None, "count": None, "dirs": None, "dd_bytes": None, "dd_seconds": None,
           "error_line": None}
    for line in (text or "").splitlines():
        line = line.strip()
        m = re.match(r"^labctl-rc (\d+)", line)
        if m:
            out["rc"] = int(m.group(1))
            continue
        m = re.match(r"^labctl-count (\d+)(?: dirs (\d+))?", line)
        if m:
            out["count"] = int(m.group(1))
            if m.group(2):
                out["dirs"] = int(m.group(2))
            continue
        m = re.match(r"^(\d+) bytes", line)
        if m:
            out["dd_bytes"] = int(m.group(1))
            t = re.search(r"copied,\s*([0-9.]+) s", line)
            if t:
                out["dd_seconds"] = float(t.group(1))
            continue
        if out["error_line"] is None and classify_container_error(line):
            out["error_line"] = one_line(line, 200)
    out["error"] = classify_container_error(text)
    return out


def stat_size(path):
    try:
        return os.stat(path).st_size
    except (OSError, TypeError):
        return None


def container_alive(pid):
    if not pid:
        return False
    stat = read_text("/proc/%d/stat" % pid, 512)
    if stat is None:
        return False
    fields = stat.rsplit(")", 1)[-1].split()
    return not (fields and fields[0] in ("Z", "X"))


def kernel_log():
    """The kernel's log (`dmesg`), or None when it cannot be read."""
    path = which("dmesg") or find_tool("dmesg")
    if not path:
        return None
    res = run_cmd([path], timeout=15)
    return res.out if res.ok else None


class ContainerView(object):
    """One container as the host sees it: its first process (pid and start time), its cgroup
    (the controller its resource is counted by) and the process that writes for it."""

    def __init__(self):
        self.pid = None
        self.pid_start = None     # /proc/PID/stat start time of the container's first process
        self.cg_dir = None        # its cgroup's folder, where this host can read it
        self.cg_version = None
        self.cg_view_path = None  # the container's cgroup as this host names it
        self.cg_mount_root = None  # the part of the cgroup tree this host sees
        self.writer = None        # the writer whose own counter is read (disk: dd)

    def attach(self, pid, controller, container_id):
        """The container's first process and its ``controller`` cgroup.  Returns False when
        that cgroup is not the container's own (Docker 1.5.0 makes no pids cgroup: the
        container sits in the daemon's, whose count is not the container's and never
        empties), else True."""
        self.pid = pid
        self.pid_start = proc_start_time(pid)
        proc_cg = parse_proc_cgroup(read_text("/proc/%d/cgroup" % pid))
        cg_mounts = parse_cgroup_mounts(read_text("/proc/self/mountinfo"))
        self.cg_dir, self.cg_version = cgroup_dir(proc_cg, cg_mounts, controller)
        if self.cg_dir and not os.path.isdir(self.cg_dir):
            self.cg_dir = None
        self.cg_view_path, self.cg_mount_root = cgroup_view(proc_cg, cg_mounts, controller)
        if self.cg_dir and not own_cgroup(self.cg_dir, container_id):
            self.cg_dir = None
            return False
        return True

    def alive(self):
        return container_alive(self.pid)

    def cproc(self, rel):
        """A path inside the container, through its first process's root."""
        if not self.pid:
            return None
        return "/proc/%d/root%s" % (self.pid, rel)

    def read_small(self, rel):
        return read_text(self.cproc(rel) or "", 32)

    def count(self):
        """What the script wrote to COUNT_FILE so far, or None."""
        return to_int(self.read_small(COUNT_FILE))

    def state(self):
        return (self.read_small(STATE_FILE) or "").strip()

    def cg_number(self, name):
        """A number from a file of the container's cgroup (None when it has none here)."""
        if not self.cg_dir:
            return None
        return read_cg_number(os.path.join(self.cg_dir, name))

    def cg_file(self, v1_name, v2_name):
        """The name of a cgroup file of the container's cgroup version."""
        return v1_name if self.cg_version == 1 else v2_name

    def writer_pid(self, name):
        """The process called ``name`` under the container's shell (found again when it is
        gone), or the container's first process when ``name`` is None."""
        if not self.pid:
            return None
        if not name:
            return self.pid
        if self.writer is None or not container_alive(self.writer):
            self.writer = find_child(self.pid, name)
        return self.writer

    def writer_info(self, name):
        """The writing process -> {'pid', 'name', 'state'}, or None when it is gone."""
        pid = self.writer_pid(name)
        f = parse_proc_stat_fields(read_text("/proc/%d/stat" % pid, 512)) if pid else None
        if not f or f[1] in ("Z", "X"):
            return None
        return {"pid": pid, "name": f[0], "state": f[1]}

    def writer_counter(self, name):
        """The bytes the writer called ``name`` handed to write() (/proc/PID/io wchar), its own
        progress counter, which moves even while a file's size waits for the page cache;
        None without a named writer."""
        if not name or not self.pid:
            return None
        pid = self.writer_pid(name)
        if not pid:
            return None
        return parse_proc_io(read_text("/proc/%d/io" % pid, 1024)).get("wchar")

    def wait_gone(self, seconds, gone_file):
        """After a kill: until the container's first process is gone and its cgroup holds
        no process any more (its pids are the host's again), at most ``seconds``.
        ``gone_file``: the cgroup file that empties ("pids.current" counts down to 0,
        "cgroup.procs" lists no pid)."""
        end = monotonic() + seconds
        while container_alive(self.pid) and monotonic() < end:
            time.sleep(0.02)
        if not self.cg_dir:
            return
        while monotonic() < end:
            path = os.path.join(self.cg_dir, gone_file)
            if not os.path.exists(path):
                break
            if gone_file == "pids.current":
                if not read_cg_number(path):
                    break
            elif not (read_text(path, 64) or "").strip():
                break
            time.sleep(0.02)
