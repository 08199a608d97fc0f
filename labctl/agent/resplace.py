# -*- coding: utf-8 -*-
"""Where a resource experiment works on the host: its folder on the docker root's filesystem
(for the host's own checks), the folder it shares with the container (disk-shared), the
filesystem it samples and the one it waits on to get its space back."""

from __future__ import absolute_import, division, print_function

import os
import shutil

from .consts import NAME_PREFIX
from .hostpaths import UnsafePath, ensure_local_dir
from .osparse import find_mount, host_mounts, path_under
from .sampling import fs_free


def same_fs_dir(agent, name, root):
    """A per-run folder on the filesystem that holds the docker root, for the shared folder
    and the host's own checks: the agent's run folder when it is on that filesystem, else
    <root>/../labctl-probe-<run>-fs, else <root>/labctl-probe-<run>-fs (the only place on a
    docker root that is a mount of its own).  Registered for cleanup; returns (path,
    on_docker_root_fs or None when unknown)."""
    try:
        root_dev = os.stat(root).st_dev
    except (OSError, TypeError):
        root_dev = None
    cands = [(os.path.join(agent.run_dir, "fs-" + name), None)]
    if root:
        top_name = "%s%s-fs" % (NAME_PREFIX, agent.run_id)
        for parent in (os.path.dirname(root.rstrip("/")), root):
            top = os.path.join(parent, top_name)
            cands.append((os.path.join(top, name), top))
    for path, top in cands:
        try:
            ensure_local_dir(path)  # a place another user can change is no candidate
        except (OSError, UnsafePath):
            continue
        if top and top not in agent.paths:
            agent.paths.append(top)
        if root_dev is None:
            return path, None
        try:
            if os.stat(path).st_dev == root_dev:
                return path, True
        except OSError:
            pass
        shutil.rmtree(top or path, True)
        if top in agent.paths:
            agent.paths.remove(top)
    path = cands[0][0]
    return ensure_local_dir(path), False


class RunPlace(object):
    """The folders and filesystems of one experiment (``setup``), and their metrics."""

    def __init__(self):
        self.fsdir = None       # the experiment's folder on the docker root's filesystem
        self.on_root = None     # ... is it on that filesystem (None: unknown)
        self.shared_dir = None  # disk-shared: the host folder the container writes to
        self.target = None      # the filesystem sampled: the docker root's, or the shared one
        self.mounts = None
        self.target_mount = None
        self.root_fs = None     # the docker root's filesystem: waited on after the run
        self.root_base = None   # ... its free space and inodes before the run

    def setup(self, agent, name, root, shared):
        """Make the experiment's folders; ``shared``: the container writes into a folder of
        the host's (bind mount), sampled instead of the docker root."""
        self.fsdir, self.on_root = same_fs_dir(agent, name, root)
        self.target = root if (root and os.path.isdir(root)) else self.fsdir
        if shared:
            # open to the container's users (a user namespace maps its root to another uid);
            # fsdir above it is the agent's own (0700), so no user of the host reaches it
            self.shared_dir = ensure_local_dir(os.path.join(self.fsdir, "shared"))
            os.chmod(self.shared_dir, 0o777)
            self.target = self.shared_dir
        self.mounts = host_mounts()
        self.target_mount = find_mount(self.mounts, os.path.realpath(self.target)) \
            if self.target else None

    def fstype(self):
        return self.target_mount and self.target_mount["fstype"]

    def metrics(self):
        tm = self.target_mount
        m = {"target_path": self.target, "target_fstype": tm and tm["fstype"],
             "target_device": tm and tm["source"],
             "hostcheck_dir_on_docker_root_fs": self.on_root}
        if self.shared_dir:
            sm = find_mount(self.mounts, os.path.realpath(self.shared_dir))
            m["shared_dir"] = self.shared_dir
            m["shared_dir_fstype"] = sm and sm["fstype"]
            m["shared_dir_on_docker_root_fs"] = self.on_root
        return m

    def watch_root(self, root):
        """The filesystem whose space must come back after the run, and its numbers now."""
        self.root_fs = root if (root and os.path.isdir(root)) else self.fsdir
        self.root_base = fs_free(self.root_fs)

    def remove(self, sampler):
        """The experiment's folder gone; ``sampler`` goes on measuring the same filesystem."""
        if not self.fsdir:
            return
        if sampler is not None and sampler.fs_path and (
                path_under(sampler.fs_path, self.fsdir) or
                os.path.realpath(sampler.fs_path) == os.path.realpath(self.fsdir)):
            sampler.fs_path = os.path.dirname(self.fsdir.rstrip("/")) or "/"
        shutil.rmtree(self.fsdir, True)
