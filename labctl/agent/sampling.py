# -*- coding: utf-8 -*-
"""Reading the host while a container runs (no forks): free space, memory, pids (HostSampler),
an experiment's samples and series (SampleLog), stall detection, the engine's socket, stopping
a container, and the host's own attempts at the container's peak (host_try_*)."""

from __future__ import absolute_import, division, print_function

import json
import os
import signal
import socket

from .cgroups import host_cgroup_limits, read_cg_number
from .consts import KIB, NAME_PREFIX
from .disklimit import allocated_bytes
from .docker import engine_request
from .dockerparse import parse_inspect
from .hostpaths import NOFOLLOW, open_replacing
from .osparse import mem_available, parse_meminfo
from .runstate import pid_alive
from .text import errno_text, fmt_bytes, monotonic, read_int, read_text, to_int

# -- a stall must mean the writer really stalled -----------------------------------------------

STALL_WINDOW_FACTOR = 5     # the window: this many times the slowest step seen so far
STALL_WINDOW_MAX_S = 60.0   # ... at most this (and never past the experiment's deadline)
STALL_BLOCKED_FACTOR = 3    # a writer blocked in I/O (state D) gets this many windows


def stall_window(stall_s, slowest_step_s, cap_s=STALL_WINDOW_MAX_S):
    """How long nothing may change before the writer counts as stalled: at least stall_s,
    and STALL_WINDOW_FACTOR times the longest time one step of progress took so far (an
    emulated or busy machine writes in bursts, seconds apart), at most cap_s."""
    window = max(float(stall_s), STALL_WINDOW_FACTOR * float(slowest_step_s or 0.0))
    return min(window, max(float(stall_s), float(cap_s)))


def stall_decision(progress_idle_s, host_idle_s, window_s, writer):
    """Has the writer really stalled?  -> (False, None) to keep waiting, or (True, detail).

    ``progress_idle_s``: seconds since the container's progress last moved (its file, its
    count, the writer's own write counter); ``host_idle_s``: since anything moved on the host
    (free space, the pool file, dirty/writeback pages); ``writer``: {'pid', 'name', 'state'}
    of the writing process, or None when it is gone.  Stalled: nothing moved in the
    container nor on the host for the window, and the writer is alive and not blocked in
    I/O; a writer in state D (waiting for the disk) gets STALL_BLOCKED_FACTOR windows."""
    idle = min(progress_idle_s, host_idle_s)
    if idle <= window_s:
        return False, None
    if writer is None:
        return True, ("the writer is gone and nothing moved in the container or on the host "
                      "for %.1f s" % idle)
    what = "%s (pid %s) is alive in state %s" % (writer.get("name") or "the writer",
                                                 writer.get("pid"), writer.get("state") or "?")
    if writer.get("state") == "D":
        if idle <= STALL_BLOCKED_FACTOR * window_s:
            return False, None
        return True, ("%s (blocked in I/O) and nothing moved in the container or on the host "
                      "for %.1f s (%d windows of %.1f s)" % (what, idle, STALL_BLOCKED_FACTOR,
                                                             window_s))
    return True, ("%s and nothing moved in the container (its progress, its own write "
                  "counter) or on the host (free space, pool file, dirty pages) for %.1f s "
                  "(window %.1f s)" % (what, idle, window_s))


def parse_proc_io(text):
    """/proc/PID/io -> {'rchar', 'wchar', 'write_bytes', ...} (ints)."""
    out = {}
    for line in (text or "").splitlines():
        k, sep, v = line.partition(":")
        if sep:
            n = to_int(v.strip())
            if n is not None:
                out[k.strip()] = n
    return out


def parse_proc_stat_fields(text):
    """/proc/PID/stat -> (name, state, ppid) or None."""
    if not text or ")" not in text:
        return None
    name = text[text.find("(") + 1:text.rfind(")")]
    rest = text.rsplit(")", 1)[1].split()
    if len(rest) < 2:
        return None
    return name, rest[0], to_int(rest[1])


def find_child(ppid, name):
    """The pid of a child process of ``ppid`` called ``name`` (e.g. dd under the container's
    shell), or None: /proc/PPID/task/PPID/children where the kernel has it, else a scan."""
    text = read_text("/proc/%d/task/%d/children" % (ppid, ppid), 4096)
    cands = [to_int(p) for p in (text or "").split()] if text is not None else None
    if cands is None:
        try:
            cands = [int(p) for p in os.listdir("/proc") if p.isdigit()]
        except OSError:
            return None
    for pid in cands:
        f = parse_proc_stat_fields(read_text("/proc/%d/stat" % pid, 512)) if pid else None
        if f and f[0] == name and f[2] == ppid:
            return pid
    return None


def parse_loadavg_threads(text):
    """'0.10 0.20 0.30 8/134 10445' -> 134 (threads on the machine)."""
    fields = (text or "").split()
    if len(fields) >= 4 and "/" in fields[3]:
        return to_int(fields[3].split("/")[1])
    return None


def self_cpu_seconds():
    """The agent's own CPU time (user + system), from /proc/self/stat; None if unknown."""
    text = read_text("/proc/self/stat")
    if not text or ")" not in text:
        return None
    fields = text.rsplit(")", 1)[1].split()
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / float(ticks)
    except (ValueError, IndexError, OSError, AttributeError):
        return None


def self_maxrss_bytes():
    """The agent's peak resident memory (VmHWM); None if unknown."""
    status = parse_meminfo(read_text("/proc/self/status"))
    return status.get("VmHWM")


def count_processes():
    try:
        return len([p for p in os.listdir("/proc") if p.isdigit()])
    except OSError:
        return None


class HostSampler(object):
    """Reads the shared resources of the host without forking: statvfs of one filesystem,
    /proc/meminfo, /proc/loadavg, /proc/[0-9]*, the visible cgroup root's limits."""

    def __init__(self, fs_path):
        self.fs_path = fs_path
        self.pid_max = read_int("/proc/sys/kernel/pid_max")
        self.threads_max = read_int("/proc/sys/kernel/threads-max")
        try:
            self.cg = host_cgroup_limits()
        except Exception:
            self.cg = {"memory_limit": None, "pids_limit": None}
        self.mem_source = None
        self.pool_file = None     # devicemapper loop-lvm: the thin pool's sparse data file
        self.pool_fs = None       # its filesystem, when it is not the sampled one

    def pids_total(self):
        values = [v for v in (self.pid_max, self.threads_max, self.cg.get("pids_limit"))
                  if v]
        return min(values) if values else None

    def sample(self):
        s = {"t": monotonic(), "free_bytes": None, "free_bytes_root": None, "size_bytes": None,
             "free_inodes": None, "inodes_total": None, "mem_available": None,
             "swap_free": None, "procs": None, "threads": None, "free_pids": None}
        try:
            st = os.statvfs(self.fs_path)
            frsize = st.f_frsize or st.f_bsize
            s["free_bytes"] = st.f_bavail * frsize
            s["free_bytes_root"] = st.f_bfree * frsize
            s["size_bytes"] = st.f_blocks * frsize
            s["free_inodes"] = st.f_favail if st.f_favail else st.f_ffree
            s["inodes_total"] = st.f_files
        except (OSError, AttributeError):
            pass
        meminfo = parse_meminfo(read_text("/proc/meminfo"))
        avail, self.mem_source = mem_available(meminfo)
        if self.cg.get("memory_limit") and avail is not None:
            usage = read_cg_number(self.cg.get("memory_usage_file") or "")
            if usage is not None:
                avail = min(avail, max(0, self.cg["memory_limit"] - usage))
        s["mem_available"] = avail
        s["swap_free"] = meminfo.get("SwapFree")
        if meminfo.get("Dirty") is not None:  # data on its way to a disk: not stalled
            s["dirty_bytes"] = meminfo["Dirty"] + meminfo.get("Writeback", 0)
        if self.pool_file:
            s["pool_bytes"] = allocated_bytes(self.pool_file)
            if self.pool_fs:
                s["pool_fs_free_bytes"] = fs_free(self.pool_fs).get("free_bytes")
        s["procs"] = count_processes()
        s["threads"] = parse_loadavg_threads(read_text("/proc/loadavg"))
        free = []
        if s["threads"] is not None:
            for total in (self.pid_max, self.threads_max):
                if total:
                    free.append(total - s["threads"])
        if self.cg.get("pids_limit"):
            cur = read_cg_number(os.path.join(self.cg["pids_dir"], "pids.current"))
            if cur is not None:
                free.append(self.cg["pids_limit"] - cur)
        s["free_pids"] = max(0, min(free)) if free else None
        return s


class SampleLog(object):
    """The samples of one experiment: every sample (each with the container's progress under
    "container"), the series kept for the result (t, container and ``series_keys``), the
    container's peak, and the sample taken at its peak."""

    def __init__(self, series_keys):
        self.series_keys = tuple(series_keys)
        self.samples = []
        self.series = {"t": [], "container": []}
        for k in self.series_keys:
            self.series[k] = []
        self.peak = None          # the container's highest progress seen
        self.peak_sample = None   # the last sample before the host's own checks

    def add(self, s, start):
        self.samples.append(s)
        self.series["t"].append(round(s["t"] - start, 3))
        self.series["container"].append(s["container"])
        for k in self.series_keys:
            self.series[k].append(s[k])
        self.raise_peak(s["container"])
        return s

    def raise_peak(self, value):
        if value is not None and (self.peak is None or value > self.peak):
            self.peak = value

    def first(self, key):
        """``key`` of the baseline sample (None before it, or when it has none)."""
        return self.samples[0].get(key) if self.samples else None

    def min(self, key):
        vals = [s[key] for s in self.samples if s.get(key) is not None]
        return min(vals) if vals else None

    def max(self, key):
        vals = [s[key] for s in self.samples if s.get(key) is not None]
        return max(vals) if vals else None

    def at_peak(self, key):
        """The value at the container's peak (before the host's own checks), else the
        extreme seen."""
        if self.peak_sample is not None and self.peak_sample.get(key) is not None:
            return self.peak_sample[key]
        return self.min(key)


def fs_free(path):
    """{'free_bytes', 'free_inodes', 'size_bytes', 'inodes_total'} of the filesystem holding
    ``path`` (root's view of the bytes: reserved blocks included); {} if unknown."""
    try:
        st = os.statvfs(path)
    except (OSError, TypeError, AttributeError):
        return {}
    frsize = st.f_frsize or st.f_bsize
    return {"free_bytes": st.f_bfree * frsize, "free_inodes": st.f_ffree,
            "size_bytes": st.f_blocks * frsize, "inodes_total": st.f_files}


def signal_process(pid, start_time=None):
    """SIGKILL one process from the host, without forking and without the engine; the
    container's first process is its pid namespace's init, so the kernel then kills every
    other process of the container.  ``start_time`` (from /proc/PID/stat when the container
    started) makes sure the pid was not reused.  True when the signal was sent."""
    if not pid or not pid_alive(pid, start_time):
        return False
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except OSError:
        return False


def kill_container(docker, name, timeout=10.0, pid=None, pid_start=None,
                   prefer_signal=False):
    """SIGKILL a container without forking: the engine's socket, or a signal to its first
    process (``pid``); the CLI last.  ``prefer_signal``: the signal first (the host has no
    pids left: the engine would need to fork runc to stop it, and a fork would fail).

    Returns "socket", "signal", "cli", or None when nothing worked (e.g. it was not
    running)."""
    if not name.startswith(NAME_PREFIX):
        return None
    if prefer_signal and signal_process(pid, pid_start):
        return "signal"
    try:
        status, _body = engine_request("POST", "/containers/%s/kill" % name, timeout)
        if status in (204, 200):
            return "socket"
        if status in (304, 409):  # not running any more
            return None
    except (socket.error, OSError, ValueError):
        pass
    if signal_process(pid, pid_start):  # the engine failed or timed out
        return "signal"
    if prefer_signal:  # no pids for the CLI either
        return None
    res = docker.run(["kill", name], timeout)
    return "cli" if res.ok else None


def inspect_state(docker, name, timeout=10.0, use_cli=True):
    """The container's inspect document: socket first (no fork), then the CLI; {} if none."""
    try:
        status, body = engine_request("GET", "/containers/%s/json" % name, timeout)
        if status == 200:
            data = json.loads(body)
            if isinstance(data, dict):
                return data
    except (socket.error, OSError, ValueError):
        pass
    if not use_cli:
        return {}
    res = docker.run(["inspect", name], timeout)
    return parse_inspect(res.out) if res.ok else {}


def selinux_enforcing():
    return (read_text("/sys/fs/selinux/enforce", 8) or "").strip() == "1"


def protect_self():
    """Keep the OOM killer off the agent: oom_score_adj -1000, or oom_adj -17 on old kernels."""
    for path, value in (("/proc/self/oom_score_adj", "-1000"), ("/proc/self/oom_adj", "-17")):
        if not os.path.exists(path):
            continue
        try:
            f = open(path, "w")
            try:
                f.write(value + "\n")
            finally:
                f.close()
            return {"oom_file": os.path.basename(path), "oom_value": int(value),
                    "oom_error": None}
        except (IOError, OSError) as exc:
            return {"oom_file": os.path.basename(path), "oom_value": None,
                    "oom_error": errno_text(exc)}
    return {"oom_file": None, "oom_value": None, "oom_error": "no oom_score_adj or oom_adj"}


def reserve_space(path, size):
    """Write ``size`` real bytes to ``path`` (not sparse) so the result can be written later
    even on a full disk; returns the bytes reserved (0 when it could not)."""
    try:
        f = open_replacing(path)
        try:
            block = b"\0" * (64 * KIB)
            left = int(size)
            while left > 0:
                f.write(block[:min(left, len(block))])
                left -= len(block)
            f.flush()
            os.fsync(f.fileno())
        finally:
            f.close()
        return int(size)
    except (IOError, OSError):
        try:
            os.remove(path)
        except OSError:
            pass
        return 0



def host_try_write(directory, size):
    path = os.path.join(directory, "labctl-hostcheck-write")
    try:
        try:
            f = open_replacing(path)
            try:
                f.write(b"\1" * int(size))
                f.flush()
                os.fsync(f.fileno())
            finally:
                f.close()
            return True, None
        except (IOError, OSError) as exc:
            return False, errno_text(exc)
    finally:
        _remove(path)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def host_try_create(directory):
    path = os.path.join(directory, "labctl-hostcheck-create")
    try:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | NOFOLLOW, 0o600)
            os.close(fd)
            return True, None
        except OSError as exc:
            return False, errno_text(exc)
    finally:
        _remove(path)


def host_try_alloc(size):
    try:
        data = b"\1" * int(size)  # every page written
        ok = len(data) == int(size)
        del data
        return ok, None
    except MemoryError:
        return False, "ENOMEM: MemoryError allocating %s" % fmt_bytes(size)


def host_try_fork():
    try:
        pid = os.fork()
    except OSError as exc:
        return False, errno_text(exc)
    if pid == 0:  # the child does nothing at all
        os._exit(0)
    try:
        os.waitpid(pid, 0)
    except OSError:
        pass
    return True, None
