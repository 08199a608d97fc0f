# -*- coding: utf-8 -*-
"""drivers-available (the study's Table 3): which storage drivers this engine and this kernel
can start, and which one the engine picks by itself.

For each candidate driver the agent starts a second, throwaway daemon of the host's own engine
(the program the running daemon runs) with that driver, on its own root folder inside the
agent's run folder, its own socket and pid file, no bridge and no iptables rules, asks it
`docker info`, and stops it; the running daemon and its containers are never touched.  Last,
one more without `-s`: the driver it picks is the engine's default here.  Every throwaway
daemon is stopped and its folder removed on every path (a device-mapper pool it made is
removed with dmsetup, its loop devices detached).
"""

from __future__ import absolute_import, division, print_function

import os
import shutil
import signal
import subprocess
import time

from .disklimit import docker_daemon_argv
from .dockerparse import parse_docker_info
from .errors import SkipExperiment
from .hostpaths import ensure_local_dir, open_append
from .osparse import mounts_under
from .text import monotonic, one_line, read_text, run_cmd, to_int, version_tuple

#: what an engine may offer (those it was not built with, or the kernel lacks, are refused)
CANDIDATES = ("aufs", "btrfs", "devicemapper", "overlay", "overlay2", "vfs", "zfs")
#: how long one throwaway daemon may take to answer (a device-mapper pool and its base device
#: are made first: ~20 s under software emulation)
START_WAIT_S = 90.0


def daemon_command(argv, server_version, driver, place):
    """The throwaway daemon's command line: the running daemon's program and mode word, its
    own root, socket and pid file, no networking of its own, and ``driver`` ("" = default)."""
    prog = argv[0]
    mode = [a for a in argv[1:3] if a in ("-d", "daemon", "--daemon")][:1]
    v = version_tuple(server_version or "0")
    root_flag = "--data-root" if v >= (17, 5) else "-g"
    cmd = [prog] + mode + [root_flag, place["root"], "-H", "unix://" + place["sock"],
                           "-p", place["pid"], "--bridge=none", "--iptables=false"]
    if v >= (1, 8):
        cmd += ["--exec-root", place["exec"]]
    if v >= (19, 3):  # a containerd shared with the running daemon: namespaces of its own
        ns = "labctl-drivers-" + os.path.basename(place["dir"])
        cmd += ["--containerd-namespace", ns, "--containerd-plugins-namespace", ns + "-plugins"]
    if driver:
        cmd += ["-s", driver]
    return cmd


def daemon_place(base, name):
    d = ensure_local_dir(os.path.join(base, name))
    return {"dir": d, "root": os.path.join(d, "root"), "exec": os.path.join(d, "exec"),
            "sock": os.path.join(d, "docker.sock"), "pid": os.path.join(d, "docker.pid"),
            "log": os.path.join(d, "daemon.log")}


def _answer(docker, proc, sock, deadline):
    """The throwaway daemon's `docker info`, parsed, once it answers (None: it exited or never
    answered in time)."""
    env = dict(os.environ, DOCKER_HOST="unix://" + sock)
    while monotonic() < deadline and proc.poll() is None:
        if os.path.exists(sock):
            res = run_cmd([docker.path, "info"], 30, env=env)
            if res.ok:
                return parse_docker_info(res.out)
        time.sleep(0.5)
    return None


def halt(proc):
    """A throwaway daemon stopped: TERM (it unmounts and deactivates what it made), then KILL."""
    if proc is not None and proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except OSError:
            pass
        end = monotonic() + 30
        while proc.poll() is None and monotonic() < end:
            time.sleep(0.2)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def release(place):
    """What a stopped throwaway daemon may have left: mounts in its folder, its device-mapper
    pool and the loop devices under it (its folder stays)."""
    for target in mounts_under(place["dir"]):
        run_cmd(["umount", "-l", target], 30)
    _remove_pool(place)


def stop_daemon(proc, place):
    """The throwaway daemon stopped, what it made released, its folder removed."""
    halt(proc)
    release(place)
    shutil.rmtree(place["dir"], True)


def _remove_pool(place):
    """A device-mapper pool the throwaway daemon left (its thin devices first), and the loop
    devices backing it from its folder."""
    res = run_cmd(["dmsetup", "ls"], 30)
    if res.ok:
        st = None
        try:
            st = os.stat(os.path.join(place["root"], "devicemapper"))
        except OSError:
            pass
        if st is not None:
            tag = "docker-%d:%d-%d-" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
            names = [ln.split()[0] for ln in res.out.splitlines() if ln.startswith(tag)]
            for name in sorted(names, key=lambda n: n.endswith("-pool")):
                run_cmd(["dmsetup", "remove", "-f", name], 30)
    res = run_cmd(["losetup", "-a"], 30)
    for line in (res.out or "").splitlines() if res.ok else []:
        if place["dir"] in line:
            run_cmd(["losetup", "-d", line.split(":", 1)[0]], 30)


def start_daemon(agent, argv, driver, place):
    """A throwaway daemon of the host's engine with ``driver`` ("" = its own choice) in
    ``place``: (process, its `docker info` or None when it exited or never answered)."""
    cmd = daemon_command(argv, agent.docker.server_version, driver, place)
    log = open_append(place["log"])  # one log for every daemon started in this place
    try:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, close_fds=True)
    finally:
        log.close()
    info = _answer(agent.docker, proc, place["sock"],
                   monotonic() + agent.deadline.remaining(START_WAIT_S))
    return proc, info


def daemon_failure(place):
    """The throwaway daemon's last error line from its log, or that it did not answer."""
    text = read_text(place["log"]) or ""
    lines = [ln for ln in text.splitlines() if "level=fatal" in ln or "FATA" in ln
             or "rror" in ln]
    return one_line(lines[-1] if lines else "did not answer within %d s" % START_WAIT_S, 200)


def try_driver(agent, argv, driver):
    """Start one throwaway daemon with ``driver`` ("" = the engine's own choice): (the driver
    it runs, or None; why not, in one line)."""
    place = daemon_place(agent.ensure_run_dir(), "driver-" + (driver or "default"))
    proc = None
    try:
        proc, info = start_daemon(agent, argv, driver, place)
        if info and info.get("storage_driver"):
            return info["storage_driver"], ""
        return None, daemon_failure(place)
    finally:
        stop_daemon(proc, place)


def experiment_drivers_available(agent, metrics):
    """Which storage drivers this engine and kernel start, and the engine's own choice."""
    dfacts = (agent.facts or {}).get("docker") or {}
    if os.getuid() != 0:
        raise SkipExperiment("needs root (it starts a second daemon of the engine)")
    argv = docker_daemon_argv(dfacts.get("daemon_pid"))
    if not argv:
        raise SkipExperiment("the running daemon's command line cannot be read")
    offered, refused = [], []
    for driver in CANDIDATES:
        got, why = try_driver(agent, argv, driver)
        if got == driver:
            offered.append(driver)
        else:
            refused.append("%s: %s" % (driver, why or "started %s instead" % got))
    default, why = try_driver(agent, argv, "")
    metrics.update({
        "drivers_available": ",".join(offered),
        "drivers_refused": "; ".join(refused),
        "default_driver": default,
        "default_driver_error": why or None,
        "running_driver": dfacts.get("storage_driver"),
        "engine_program": argv[0],
        "candidates": ",".join(CANDIDATES),
        "kernel_filesystems": ",".join(sorted(
            ln.split()[-1] for ln in (read_text("/proc/filesystems") or "").splitlines()
            if ln.split() and ln.split()[-1] in ("aufs", "overlay", "btrfs", "zfs"))),
        "dm_thin_pool_loaded": "dm_thin_pool" in (read_text("/proc/modules") or ""),
        "checked_drivers": to_int(len(CANDIDATES)),
    })
    return ("this engine and kernel start %s%s; not %s" % (
        ", ".join(offered) or "no driver",
        " (by itself: %s)" % default if default else "",
        ", ".join(r.split(":", 1)[0] for r in refused) or "-"))
