# -*- coding: utf-8 -*-
"""storage-driver-switch: the article's warning that switching the storage driver of a Docker
that has containers leaves them unusable (export what you need, delete /var/lib/docker, then
start with the new driver).

All of it on a throwaway daemon of the host's own engine (drivers-available's: its own root,
socket and pid file in the agent's run folder, no networking; the running daemon and its
containers are never touched): with the host's driver a container writes a file and stops, and
is exported (`docker export`, the article's first step); the daemon stops and starts again on
the same root with another driver: is the container still listed, does it start, does its image
still run?  Then the article's remedy: the root deleted, the daemon started with the new driver,
the export imported (`docker import`) and the file read back.  The daemon is stopped and its
folder removed on every path.
"""

from __future__ import absolute_import, division, print_function

import os
import shutil
import subprocess
import time

from .consts import PROBE_TOOLS_ALL
from .context import lost_udev_race
from .disklimit import docker_daemon_argv
from .docker import Docker
from .drivers import daemon_failure, daemon_place, halt, release, start_daemon, stop_daemon
from .errors import ExperimentError, SkipExperiment
from .hostpaths import open_new
from .image import ensure_probe_image
from .text import monotonic, one_line, random_token

CONTAINER = "labctl-switch"
RESTORED = "labctl-switch-restored"


class ThrowawayDocker(Docker):
    """The docker client, talking to one throwaway daemon's socket."""

    def __init__(self, path, sock, server_version):
        Docker.__init__(self, path)
        self.sock = sock
        self.server_version = server_version

    def run(self, args, timeout=60.0, stdin_file=None):
        return Docker.run(self, ["-H", "unix://" + self.sock] + list(args), timeout, stdin_file)


def second_driver(first):
    """The driver to switch to: vfs (it starts wherever the engine runs), or overlay from vfs."""
    return "overlay" if first == "vfs" else "vfs"


def _start(agent, argv, driver, place, step):
    """A throwaway daemon on ``place``'s root with ``driver``: (process, its client); an error
    naming the step when it does not answer with that driver."""
    proc, info = start_daemon(agent, argv, driver, place)
    if not info or info.get("storage_driver") != driver:
        halt(proc)
        raise ExperimentError("daemon", "the throwaway daemon did not start with %s (%s): %s"
                              % (driver, step, daemon_failure(place)))
    return proc, ThrowawayDocker(agent.docker.path, place["sock"], agent.docker.server_version)


def _export(client, name, path, timeout):
    """`docker export NAME` into ``path`` (a new file): its size in bytes, or an error."""
    out = open_new(path)
    try:
        proc = subprocess.Popen([client.path, "-H", "unix://" + client.sock, "export", name],
                                stdout=out, stderr=subprocess.PIPE, close_fds=True)
    finally:
        out.close()
    end = monotonic() + timeout
    while proc.poll() is None and monotonic() < end:
        time.sleep(0.2)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        raise ExperimentError("docker-export", "`docker export` took over %d s" % timeout)
    err = proc.stderr.read().decode("utf-8", "replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise ExperimentError("docker-export", "`docker export` failed: %s" % one_line(err))
    return os.path.getsize(path)


def _run_once(agent, client, args):
    """`docker run` that retries the 1.5.0 device-mapper udev race (context.lost_udev_race)."""
    res = client.run(args, agent.deadline.remaining(120))
    for delay in (1, 3):
        if res.ok or not lost_udev_race(res.err + res.out):
            break
        client.run(["rm", "-f", CONTAINER], 30)
        time.sleep(delay)
        res = client.run(args, agent.deadline.remaining(120))
    return res


def _before(agent, argv, first, place, token, metrics):
    """With the host's driver: the container writes a file, stops and is exported."""
    proc, client = _start(agent, argv, first, place, "before the switch")
    try:
        image = ensure_probe_image(client, place["dir"], PROBE_TOOLS_ALL,
                                   agent.deadline.remaining(300))["probe_image"]
        res = _run_once(agent, client, ["run", "--net=none", "--name", CONTAINER, image,
                                        "/bin/sh", "-c", "echo %s > /labctl-switch" % token])
        if not res.ok:
            raise ExperimentError("docker-run", "the container did not run before the switch "
                                  "(%s)" % res.describe())
        metrics["export_bytes"] = _export(client, CONTAINER, place["export"],
                                          agent.deadline.remaining(120))
        return image
    finally:
        halt(proc)


def _after(agent, argv, second, place, image, metrics):
    """With the other driver on the same root: is the container there, does it start, does its
    image run?"""
    proc, client = _start(agent, argv, second, place, "after the switch")
    try:
        res = client.run(["ps", "-a", "--no-trunc"], agent.deadline.remaining(30))
        metrics["container_listed_after_switch"] = res.ok and CONTAINER in res.out
        res = client.run(["start", CONTAINER], agent.deadline.remaining(60))
        metrics["container_starts_after_switch"] = res.ok
        metrics["container_start_error"] = None if res.ok else one_line(res.err or res.out, 200)
        res = client.run(["images", "--no-trunc"], agent.deadline.remaining(30))
        listed = res.ok and image.split(":")[0] in res.out
        metrics["image_listed_after_switch"] = listed
        metrics["image_runs_after_switch"] = False
        metrics["image_run_error"] = None
        if listed:  # never `run` a missing image: the engine would pull it from a registry
            res = client.run(["run", "--rm", "--net=none", image, "/bin/sh", "-c", "true"],
                             agent.deadline.remaining(120))
            metrics["image_runs_after_switch"] = res.ok
            metrics["image_run_error"] = None if res.ok else one_line(res.err or res.out, 200)
    finally:
        halt(proc)


def _remedy(agent, argv, second, place, token, metrics):
    """The article's way: the root deleted, the daemon started with the new driver, the export
    imported and its file read back."""
    release(place)
    shutil.rmtree(place["root"], True)
    proc, client = _start(agent, argv, second, place, "after deleting the root")
    try:
        f = open(place["export"], "rb")
        try:
            res = client.run(["import", "-", RESTORED], agent.deadline.remaining(120), f)
        finally:
            f.close()
        if res.ok:
            res = _run_once(agent, client, ["run", "--rm", "--net=none", RESTORED,
                                            "/bin/cat", "/labctl-switch"])
        metrics["restored_reads_file"] = res.ok and res.out.strip() == token
        metrics["restore_error"] = None if res.ok else one_line(res.err or res.out, 200)
    finally:
        halt(proc)


def experiment_storage_driver_switch(agent, metrics):
    """A container made with the host's driver, after the daemon switches driver; then the
    article's remedy."""
    dfacts = (agent.facts or {}).get("docker") or {}
    if os.getuid() != 0:
        raise SkipExperiment("needs root (it starts a second daemon of the engine)")
    argv = docker_daemon_argv(dfacts.get("daemon_pid"))
    first = dfacts.get("storage_driver")
    if not argv or not first:
        raise SkipExperiment("the running daemon's command line or storage driver is unknown")
    second = second_driver(first)
    metrics.update({"first_driver": first, "second_driver": second, "engine_program": argv[0]})
    place = daemon_place(agent.ensure_run_dir(), "switch")
    place["export"] = os.path.join(place["dir"], "export.tar")
    token = random_token()
    try:
        image = _before(agent, argv, first, place, token, metrics)
        _after(agent, argv, second, place, image, metrics)
        _remedy(agent, argv, second, place, token, metrics)
    finally:
        stop_daemon(None, place)
    return switch_verdict(metrics)


def switch_verdict(m):
    """What the switch did, and whether the article's remedy worked, in words."""
    if not m.get("container_listed_after_switch"):
        fate = "is no longer listed"
    elif not m.get("container_starts_after_switch"):
        fate = "is listed but does not start (%s)" % m.get("container_start_error")
    else:
        fate = "is listed and starts"
    if m.get("image_runs_after_switch"):
        image = "still runs"
    elif m.get("image_listed_after_switch"):
        image = "is listed but does not run (%s)" % m.get("image_run_error")
    else:
        image = "is gone"
    remedy = ("gives the file back" if m.get("restored_reads_file") else
              "fails (%s)" % m.get("restore_error"))
    unusable = not (m.get("container_listed_after_switch")
                    and m.get("container_starts_after_switch"))
    return ("a container made with %s, after the daemon switched to %s: it %s; its image %s; "
            "export, delete the root, start, import %s%s"
            % (m.get("first_driver"), m.get("second_driver"), fate, image, remedy,
               "; as the article says" if unusable and m.get("restored_reads_file")
               else "; not as the article says"))
