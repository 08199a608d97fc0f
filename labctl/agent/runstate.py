# -*- coding: utf-8 -*-
"""Run bookkeeping: pid files, which agents live, the reaper of dead runs' leftovers,
and the signal handlers."""

from __future__ import absolute_import, division, print_function

import errno
import os
import shutil
import signal
import time

from .consts import NAME_PREFIX, RUN_ID_RE
from .errors import AgentInterrupted
from .handmount import release_hand_mount
from .hostpaths import RUNS, local_problem, open_replacing
from .text import read_text, to_int


def proc_start_time(pid):
    text = read_text("/proc/%d/stat" % pid)
    if not text or ")" not in text:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid, start_time=None):
    try:
        os.kill(pid, 0)
    except OSError as exc:
        if exc.errno != errno.EPERM:
            return False
    if start_time:
        now = proc_start_time(pid)
        if now is not None and now != start_time:
            return False  # the pid was reused by another process
    return True


def runs_dir(workdir):
    return os.path.join(workdir, "runs")


def write_pid_file(run_dir):
    path = os.path.join(run_dir, "agent.pid")
    f = open_replacing(path)
    try:
        f.write(("%d %s\n" % (os.getpid(), proc_start_time(os.getpid()) or "")).encode("ascii"))
    finally:
        f.close()
    return path


def read_pid_file(run_dir):
    text = read_text(os.path.join(run_dir, "agent.pid"))
    if not text:
        return None, None
    fields = text.split()
    pid = to_int(fields[0]) if fields else None
    return pid, (fields[1] if len(fields) > 1 else None)


def live_agent_run_ids():
    """Run ids of probe agents alive on this host, whatever their workdir (from /proc)."""
    ids = set()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return ids
    for p in pids:
        raw = read_text("/proc/%s/cmdline" % p)
        if not raw or "probe_agent" not in raw:
            continue
        args = raw.split("\0")
        for i, a in enumerate(args):
            if a == "--run-id" and i + 1 < len(args):
                ids.add(args[i + 1])
            elif a.startswith("--run-id="):
                ids.add(a[len("--run-id="):])
    return ids


#: a controller run folder without a pid file that changed this recently may be a run being
#: started (between its mkdir, upload and launch); an upload in progress is also seen by the
#: file it holds open, so the grace can be short
STARTING_GRACE_S = 10
#: a dead run's result that no controller fetched is kept this long for `labctl collect`
UNCOLLECTED_KEEP_S = 7 * 24 * 3600
_UNCOLLECTED_KEEP = ("result.json", "agent.log")
#: from the launch's empty pid file to its agent showing in /proc (a fork and an exec)
LAUNCH_GRACE_S = 2
#: a run folder dated more than this in the future was made before the clock was stepped back
FUTURE_SLACK_S = 60


def _newest_mtime(path):
    newest = 0
    for p in [path] + [os.path.join(path, n) for n in _listdir(path)]:
        try:
            newest = max(newest, os.lstat(p).st_mtime)
        except OSError:
            pass
    return newest


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _open_under(parent):
    """Run folders under ``parent`` in which some process holds a file open (an upload)."""
    held = set()
    prefix = parent.rstrip("/") + "/"
    for pid in _listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = "/proc/%s/fd" % pid
        for fd in _listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith(prefix):
                held.add(target[len(prefix):].split("/", 1)[0])
    return held


def reap_controller_runs(parent, live, removed, now=None):
    """The controller's run folders of dead runs in ``parent`` (<labctl's folder>/runs): gone,
    except an uncollected result (kept with its log for `labctl collect`, for a week).
    A folder is live when an agent of its run lives (pid + start time in its agent.pid, or
    seen in /proc), or when it has no agent.pid yet and either holds a file some process has
    open (an upload in progress) or changed in the last seconds without a cut upload in it."""
    now = now or time.time()
    held = None
    for name in _listdir(parent):
        path = os.path.join(parent, name)
        if not RUN_ID_RE.match(name) or os.path.islink(path) or not os.path.isdir(path):
            continue
        pid, start = read_pid_file(path)
        if name in live or (pid is not None and pid_alive(pid, start)):
            live.add(name)
            continue
        age = now - _newest_mtime(path)
        if age < -FUTURE_SLACK_S:
            # dated in the future: the clock was stepped back since; its age counts from now
            # (left as it was, it would wait out the step before its week began)
            for p in [path] + [os.path.join(path, n) for n in _listdir(path)]:
                if not os.path.islink(p):
                    try:
                        os.utime(p, None)
                    except OSError:
                        pass
            age = 0.0
        if pid is None and os.path.lexists(os.path.join(path, "agent.pid")):
            # an empty pid file: the launch was cut (its shell killed before it wrote the
            # pid); an agent it started is in `live` once it runs, so wait only for that
            if age < LAUNCH_GRACE_S:
                continue
        elif pid is None:  # no pid file yet: between mkdir, upload and launch
            if held is None:
                held = _open_under(parent)
            if name in held:
                continue  # an upload in progress
            cut = [e for e in _listdir(path) if e.endswith(".part")]
            if age < STARTING_GRACE_S and not cut:
                continue  # between mkdir and upload, or upload and launch

        if os.path.isfile(os.path.join(path, "result.json")) and age < UNCOLLECTED_KEEP_S:
            for entry in _listdir(path):
                if entry in _UNCOLLECTED_KEEP:
                    continue
                p = os.path.join(path, entry)
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p, True)
                else:
                    try:
                        os.remove(p)
                    except OSError:
                        pass
                if not os.path.lexists(p):
                    removed["workdirs"].append(p)
            continue
        shutil.rmtree(path, True)
        if not os.path.exists(path):
            removed["workdirs"].append(path)
        else:
            removed["errors"].append("could not remove %s" % path)


def reap(workdir, docker, own_run_id=None, fs_parents=(), controller_runs=None):
    """Remove leftovers of dead runs: their labctl-probe-<run>-* containers, run dirs, and
    labctl-probe-<run>-fs folders (shared folders) in ``fs_parents`` (the docker root and
    its parent), and the controller's folders of dead runs in ``controller_runs``."""
    removed = {"containers": [], "workdirs": [], "kept_live_runs": [], "errors": []}
    live = live_agent_run_ids()
    if own_run_id:
        live.add(own_run_id)
    if controller_runs:
        reap_controller_runs(controller_runs, live, removed)
    dead_dirs = []
    rdir = runs_dir(workdir)
    try:
        names = sorted(os.listdir(rdir))
    except OSError:
        names = []
    for name in names:
        path = os.path.join(rdir, name)
        if not os.path.isdir(path):
            continue
        pid, start = read_pid_file(path)
        if name in live or (pid is not None and pid_alive(pid, start)):
            live.add(name)
            continue
        dead_dirs.append(path)
    removed["kept_live_runs"] = sorted(live)
    if docker is not None and docker.path:
        rows = docker.container_names()
        if rows is None:
            removed["errors"].append("could not list containers")
        else:
            for _cid, cnames in rows:
                for cname in cnames:
                    if not cname.startswith(NAME_PREFIX):
                        continue
                    owned_by_live = False
                    for rid in live:
                        if cname.startswith(NAME_PREFIX + rid + "-"):
                            owned_by_live = True
                    if owned_by_live:
                        continue
                    if docker.remove_container(cname):
                        removed["containers"].append(cname)
                    else:
                        removed["errors"].append("could not remove container %s" % cname)
    for parent in fs_parents or ():
        if not parent or local_problem(os.path.abspath(parent)):
            continue  # a place another user can change: the agent made nothing there
        try:
            entries = sorted(os.listdir(parent))
        except (OSError, TypeError):
            continue
        for entry in entries:
            if not (entry.startswith(NAME_PREFIX) and entry.endswith("-fs")):
                continue
            rid = entry[len(NAME_PREFIX):-len("-fs")]
            if rid in live:
                continue
            dead_dirs.append(os.path.join(parent, entry))
    for path in dead_dirs:
        left = release_hand_mount(path, os.path.basename(path))
        if left:  # never delete through a mount
            removed["errors"].append("kept %s: could not release %s" % (path, ", ".join(left)))
            continue
        shutil.rmtree(path, True)
        if not os.path.exists(path):
            removed["workdirs"].append(path)
    return removed


def controller_runs_of(out, workdir):
    """<base>/runs when the result goes to <base>/runs/<run-id>/result.json and the workdir
    is <base>/work (the controller's layout, hostpaths), else None: a hand-run agent reaps no
    folder it did not make."""
    parent = os.path.dirname(os.path.dirname(os.path.abspath(out)))
    if parent == os.path.join(os.path.dirname(os.path.abspath(workdir)), RUNS):
        return parent
    return None


def fs_parents_of(root_dir):
    """Where labctl-probe-<run>-fs folders may be: the docker root and its parent."""
    if not root_dir:
        return ()
    return (os.path.dirname(root_dir.rstrip("/")), root_dir)


SIGNALS = {"received": None, "defer": False}


def _on_signal(signum, frame):
    if SIGNALS["received"] is None:
        SIGNALS["received"] = signum
        if not SIGNALS["defer"]:
            raise AgentInterrupted(signum)


def install_signal_handlers():
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, _on_signal)
