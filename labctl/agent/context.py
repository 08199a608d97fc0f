# -*- coding: utf-8 -*-
"""The agent's run context: its deadline, limits, progress file and the containers it
started (removed on every path)."""

from __future__ import absolute_import, division, print_function

import os
import shutil
import time

from .consts import NAME_PREFIX, PROBE_TOOLS_ALL
from .docker import Docker
from .errors import ExperimentError
from .handmount import release_hand_mount
from .hostpaths import ensure_local_dir
from .image import ensure_probe_image
from .limits import DEFAULT_LIMITS
from .runstate import runs_dir
from .sampling import inspect_state, kill_container
from .text import append_progress, monotonic, one_line


class Deadline(object):
    def __init__(self, seconds):
        self.end = monotonic() + seconds

    def remaining(self, cap=None):
        left = self.end - monotonic()
        if left <= 0:
            raise ExperimentError("timeout", "the run's time budget (--timeout) is used up")
        if cap is not None:
            return min(left, cap)
        return left


def lost_udev_race(text):
    """Docker 1.5.0's static binary has no udev sync: on devicemapper a start can fail while
    udev still makes the device node, as "Error mounting '/dev/mapper/...'" (seen on the 1st and
    the 6th container of a run) or "Error getting container ... from driver devicemapper: open
    /dev/mapper/...: no such file" (seen in CI); the same start a moment later works."""
    low = (text or "").lower()
    return "/dev/mapper/" in low and ("error mounting" in low
                                      or "from driver devicemapper" in low)


class Agent(object):
    def __init__(self, run_id, host, workdir, timeout, progress_path=None, docker=None,
                 mode="bounded", limit_overrides=None, disposable=False):
        self.run_id = run_id
        self.host = host
        self.workdir = workdir
        self.run_dir = os.path.join(runs_dir(workdir), run_id)
        self.timeout = timeout
        self.deadline = Deadline(timeout)
        self.progress_path = progress_path
        self.docker = docker or Docker()
        self.containers = []
        self.paths = []   # folders outside run_dir (shared folders) removed at cleanup
        self.facts = None
        self.mode = mode
        #: the host may be damaged (--disposable: the controller says so for hosts marked
        #: labctl_disposable): storage-host-mount runs only then
        self.disposable = disposable
        self.limit_overrides = dict(limit_overrides or {})
        self.image = None          # ensure_probe_image's answer, once per run
        self.image_reported = False
        self.last_run_err = ""     # the last `docker run`'s stderr (the engine's warnings)
        self.start_retries = []    # `docker run` errors retried in the current experiment

    def probe_image(self, cap=300):
        """The run's one probe image (every tool any experiment needs): built or found on
        the first call (execute_run makes it before the first experiment, while the disk is
        as the run found it), reused after.  Metrics for one experiment; only the first
        experiment says it was built."""
        if self.image is None:
            self.image = ensure_probe_image(self.docker, self.ensure_run_dir(), PROBE_TOOLS_ALL,
                                            timeout=self.deadline.remaining(cap))
        info = dict(self.image)
        if self.image_reported:
            info["probe_image_built"] = False
            info["probe_image_bytes"] = None
        self.image_reported = True
        return info

    def ensure_run_dir(self):
        """The agent's folder of this run (hostpaths' rule: made 0700, or refused)."""
        return ensure_local_dir(self.run_dir)

    def limits(self):
        """DEFAULT_LIMITS with the --limit overrides (caps/floors are resolved per
        experiment by cap_and_floor, which also applies the mode)."""
        lim = dict(DEFAULT_LIMITS)
        lim.update(self.limit_overrides)
        return lim

    def progress(self, event, experiment=None, message=""):
        append_progress(self.progress_path, event, experiment, message)

    def container_name(self, suffix):
        return "%s%s-%s" % (NAME_PREFIX, self.run_id, suffix)

    def docker_cmd(self, args, cap=60.0, stdin_file=None):
        return self.docker.run(args, self.deadline.remaining(cap), stdin_file=stdin_file)

    def start_container(self, suffix, image, command, extra_args=()):
        name = self.container_name(suffix)
        args = ["run", "-d", "--net=none", "--name", name]
        if self.docker.supports((1, 6)):
            args += ["--label", "labctl.run=%s" % self.run_id]
        args += list(extra_args) + [image] + list(command)
        self.containers.append(name)
        res = self.docker_cmd(args, 120)
        for delay in (1, 3):
            if res.ok or not lost_udev_race(res.err + res.out):
                break
            self.start_retries.append(one_line(res.err or res.out, 300))
            self.docker.remove_container(name)
            time.sleep(delay)
            res = self.docker_cmd(args, 120)
        self.last_run_err = res.err or ""
        if not res.ok:
            # the client can die after the start (a container that takes every pid leaves
            # the Go client no thread): the engine's word, over its socket, decides
            state = (inspect_state(self.docker, name, use_cli=False).get("State") or {}) \
                if res.rc != 127 else {}
            started = (state.get("StartedAt") or "0001")[:4] not in ("", "0001")
            if state.get("Running") or state.get("Pid") or started:
                return name, ""
            raise ExperimentError("docker-run", "could not start the probe container (%s)"
                                  % res.describe())
        return name, res.out.strip()

    def remove_container(self, name):
        ok = self.docker.remove_container(name)
        if ok and name in self.containers:
            self.containers.remove(name)
        return ok

    def cleanup(self):
        """Remove every container of this run (also ones whose `docker run` timed out),
        and every folder it made."""
        for name in list(self.containers):
            kill_container(self.docker, name, 5)  # no fork, frees pids/memory first
            self.remove_container(name)
        if self.docker.path and self.docker.server_version:
            rows = self.docker.container_names() or []
            prefix = NAME_PREFIX + self.run_id + "-"
            for _cid, names in rows:
                for n in names:
                    if n.startswith(prefix):
                        self.remove_container(n)
        for path in list(self.paths):
            shutil.rmtree(path, True)
            if not os.path.exists(path):
                self.paths.remove(path)
        if not release_hand_mount(self.run_dir, self.run_id):  # never delete through a mount
            shutil.rmtree(self.run_dir, True)
