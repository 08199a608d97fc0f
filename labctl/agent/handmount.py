# -*- coding: utf-8 -*-
"""storage-host-mount's leftovers: a mount in a run's folder and the run's hand-made thin device.

Released by the check itself, by the agent's cleanup and by `reap` (a run killed mid-check),
always before the run's folder is deleted: a recursive delete would go into the container's
filesystem through the mount.
"""

from __future__ import absolute_import, division, print_function

import os
import time

from .osparse import mounts_under
from .text import run_cmd, which

#: the hand-made device of run R is /dev/mapper/labctl-hm-R
DEVICE_PREFIX = "labctl-hm-"


def release_hand_mount(run_dir, run_id):
    """Unmount whatever is mounted in ``run_dir`` and remove run ``run_id``'s hand-made device
    (after an interrupted storage-host-mount, before the folder is deleted: a recursive delete
    would go into the container's filesystem).  Returns what could not be released."""
    left = []
    for where in mounts_under(run_dir):
        if not run_cmd(["umount", where], 60).ok:
            run_cmd(["umount", "-l", where], 60)
        if where in mounts_under(where):
            left.append("mount %s" % where)
    dev = DEVICE_PREFIX + run_id
    if os.path.exists(os.path.join("/dev/mapper", dev)) and which("dmsetup"):
        for delay in (0, 1, 3):
            time.sleep(delay)
            if run_cmd(["dmsetup", "remove", dev], 60).ok:
                break
        else:
            left.append("device /dev/mapper/%s" % dev)
    return left
