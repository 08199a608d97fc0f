# -*- coding: utf-8 -*-
"""The storage-location experiment: where a container's files live on the host."""

from __future__ import absolute_import, division, print_function

import os
import re

from .consts import FIND_TIME_LIMIT
from .errors import ExperimentError
from .hostpaths import NOFOLLOW
from .osparse import find_mount, parse_mountinfo, parse_proc_mounts, path_under, root_mount
from .sampling import inspect_state
from .text import monotonic, random_token, read_text


def storage_candidates(inspect, root, driver):
    """Host paths where the container's root may live, best (the write layer) first."""
    first = []
    last = []
    gd = inspect.get("GraphDriver") or {}
    data = gd.get("Data") or {}
    for key in ("UpperDir", "Dir"):
        if data.get(key):
            first.append(data[key])
    if data.get("MergedDir"):
        last.append(data["MergedDir"])
    ids = []
    cid = inspect.get("Id")
    drv = gd.get("Name") or driver
    if root and cid and drv:  # 1.10+: the layer id is in the layer db
        mid = read_text(os.path.join(root, "image", drv, "layerdb", "mounts", cid, "mount-id"))
        if mid and mid.strip():
            ids.append(mid.strip())
    if cid:
        ids.append(cid)
    if root:
        for i in ids:
            first += [os.path.join(root, "overlay2", i, "diff"),
                      os.path.join(root, "overlay", i, "upper"),
                      os.path.join(root, "aufs", "diff", i),
                      os.path.join(root, "btrfs", "subvolumes", i),
                      os.path.join(root, "vfs", "dir", i),
                      os.path.join(root, "zfs", "graph", i)]
            last += [os.path.join(root, "overlay2", i, "merged"),
                     os.path.join(root, "overlay", i, "merged"),
                     os.path.join(root, "aufs", "mnt", i),
                     os.path.join(root, "devicemapper", "mnt", i, "rootfs")]
    out = []
    for p in first + last:
        if p not in out:
            out.append(p)
    return out


def _path_rank(path):
    for i, part in enumerate(("/diff/", "/upper/", "/subvolumes/", "/dir/")):
        if part in path:
            return i
    return 10


def bounded_find(root, filename, time_limit=FIND_TIME_LIMIT):
    """Walk ``root`` for ``filename`` for at most time_limit seconds.

    Returns (matches sorted best first, timed_out).
    """
    end = monotonic() + time_limit
    matches = []
    timed_out = False
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: None):
        if filename in filenames:
            matches.append(os.path.join(dirpath, filename))
            if _path_rank(matches[-1]) < 10:
                break
        if monotonic() > end:
            timed_out = True
            break
        # <root>/containers holds logs and config, never a container's files
        dirnames[:] = [d for d in dirnames if not (dirpath == root and d in ("containers",))]
    matches.sort(key=_path_rank)
    return matches, timed_out


def _display_dir(path, ids):
    d = os.path.dirname(path)
    for i in ids:
        if i:
            d = d.replace(i, "<id>")
    return re.sub(r"[0-9a-f]{64}(-init)?", "<id>", d)


def storage_verdict(m, ids=()):
    fstype = m.get("container_root_fstype") or "unknown"
    source = m.get("container_root_source") or "unknown"
    if m.get("host_path"):
        where = _display_dir(m["host_path"], ids)
        if m.get("container_root_is_block_device"):
            # devicemapper: the thin device is ALSO mounted in the host's tree while the
            # container runs (the article's CentOS 6.6 finding), unlike CentOS 7.0's
            access = ("the host can read and change them there" if m.get("host_can_read")
                      and m.get("host_can_write") else
                      "the host can read them there" if m.get("host_can_read") else
                      "the host could not read them there")
            ns = (", the daemon sharing the host's mount namespace"
                  if m.get("daemon_mount_ns") == "host" else "")
            return ("separate block device mounted in the host's tree: the container's root is "
                    "%s on %s, which the engine also mounts at %s on the host%s; %s (the "
                    "article's CentOS 6.6 device-mapper finding)" % (fstype, source, where, ns,
                                                                       access))
        if m.get("host_can_read") and m.get("host_can_write") and m.get(
                "container_sees_host_write"):
            return ("shares host filesystem: the container's files are plain files under %s; "
                    "the host can read and change them and the container sees the change"
                    % where)
        if m.get("host_can_read") and m.get("host_can_write"):
            return ("shares host filesystem: the container's files are plain files under %s; "
                    "the host can read and change them but the container did not see the "
                    "change" % where)
        if m.get("host_can_read"):
            return ("shares host filesystem, read-only from the host: the container's files "
                    "are under %s; the host can read but not change them" % where)
        return ("found on the host but not readable: the container's file is at %s; the host "
                "could not read it" % where)
    if m.get("container_root_is_block_device") and m.get("daemon_mount_ns") == "private":
        if m.get("daemon_ns_path"):
            via = ("the host reaches them only through /proc/<dockerd>/root, where it %s" % (
                "can read and change them" if m.get("host_can_read_via_daemon_ns")
                and m.get("host_can_write_via_daemon_ns") else
                "can read but not change them" if m.get("host_can_read_via_daemon_ns") else
                "cannot read them"))
        else:
            via = "the host did not find them through /proc/<dockerd>/root either"
        return ("separate block device, mounted only in the daemon's private mount namespace: "
                "the container's root is %s on %s, which the engine mounts in its own mount "
                "namespace (MountFlags=slave in its unit, or unshare -m in its init script), "
                "not in the host's file tree; %s "
                "(the article's CentOS 7.0 device-mapper finding)" % (fstype, source, via))
    if m.get("container_root_is_block_device"):
        return ("separate block device: the container's root is %s on %s, not in the host's "
                "file tree (the article's CentOS 7.0 device-mapper finding)" % (fstype, source))
    return ("not found on the host: the container's file was not found under %s (the "
            "container's root is %s on %s)" % (m.get("docker_root_dir") or "the docker root",
                                                 fstype, source))


def _device_mounted(mountinfo_path, source):
    """Is ``source`` (a block device) mounted in the namespace of that mountinfo? None when
    the file cannot be read."""
    text = read_text(mountinfo_path)
    if text is None:
        return None
    real = os.path.realpath(source)
    for m in parse_mountinfo(text):
        if m["source"] in (source, real) or os.path.realpath(m["source"]) == real:
            return True
    return False


def _read_and_change(agent, name, path, cfile, token):
    """From the host: read the container's file at ``path``, write a new token into it, and
    ask the container whether it sees the change -> (can_read, can_write, container_sees)."""
    content = read_text(path)
    can_read = content is not None and content.strip() == token
    new_token = "host-" + random_token()
    try:
        # the container's file, seen from the host: written in place, never through a link
        f = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | NOFOLLOW, 0o644), "w")
        try:
            f.write(new_token + "\n")
            f.flush()
            os.fsync(f.fileno())
        finally:
            f.close()
        can_write = True
    except (IOError, OSError):
        can_write = False
    sees = None
    if can_write:
        res = agent.docker_cmd(["exec", name, "/bin/cat", cfile], 30)
        sees = res.ok and res.out.strip() == new_token
    return can_read, can_write, sees


def _initial_metrics(dfacts):
    return {
        "container_file": None, "host_path": None, "found_by": None,
        "host_path_under_docker_root": False, "host_path_on_docker_root_fs": None,
        "host_path_fstype": None,
        "host_can_read": None, "host_can_write": None, "container_sees_host_write": None,
        "container_root_fstype": None, "container_root_source": None,
        "container_root_is_block_device": False,
        "storage_driver": dfacts.get("storage_driver"), "docker_root_dir": dfacts.get("root_dir"),
        "graph_driver": None, "find_timed_out": None, "agent_is_root": os.getuid() == 0,
        "daemon_pid": dfacts.get("daemon_pid"), "daemon_mount_ns": dfacts.get("mount_namespace"),
        "in_host_tree": None, "container_root_mounted_in_host_ns": None,
        "container_root_mounted_in_daemon_ns": None, "daemon_ns_path": None,
        "host_can_read_via_daemon_ns": None, "host_can_write_via_daemon_ns": None,
        "container_sees_daemon_ns_write": None,
    }


def _write_in_container(agent, name, token, cfile, metrics):
    """The container writes its file and reads its own mount table -> its root mount."""
    # one exec writes the file and reads the container's own mount table (each exec costs
    # the host ~0.1 s of CPU); exit 97 says the write failed
    res = agent.docker_cmd(["exec", name, "/bin/sh", "-c",
                            "echo %s > %s || exit 97; cat /proc/self/mountinfo; exit 0"
                            % (token, cfile)], 60)
    if not res.ok:
        raise ExperimentError("docker-exec", "could not write the file inside the "
                              "container (%s)" % res.describe())
    mounts = parse_mountinfo(res.out)
    if not mounts:
        res = agent.docker_cmd(["exec", name, "/bin/cat", "/proc/mounts"], 30)
        mounts = parse_proc_mounts(res.out) if res.ok else []
    rm = root_mount(mounts)
    if rm:
        metrics["container_root_fstype"] = rm["fstype"]
        metrics["container_root_source"] = rm["source"]
        metrics["container_root_is_block_device"] = rm["source"].startswith("/dev/")
    return rm


def _find_on_host(agent, insp, root, cfile, metrics):
    """The container's file on the host: docker inspect first, then a bounded walk."""
    for cand in storage_candidates(insp, root, metrics["storage_driver"]):
        p = cand.rstrip("/") + cfile
        if os.path.isfile(p):
            metrics["found_by"] = "inspect"
            return p
    host_path = None
    if root and os.path.isdir(root):
        matches, timed_out = bounded_find(
            root, cfile.lstrip("/"), agent.deadline.remaining(FIND_TIME_LIMIT))
        metrics["find_timed_out"] = timed_out
        if matches:
            host_path, metrics["found_by"] = matches[0], "find"
    return host_path


def _where_mounted(rm, metrics):
    """Is the container's device mounted where the host (init) sees it, or only in the
    daemon's own mount namespace (MountFlags=slave: the article's CentOS 7.0)?"""
    metrics["container_root_mounted_in_host_ns"] = _device_mounted(
        "/proc/1/mountinfo", rm["source"])
    if metrics["daemon_pid"]:
        metrics["container_root_mounted_in_daemon_ns"] = _device_mounted(
            "/proc/%d/mountinfo" % metrics["daemon_pid"], rm["source"])


def _from_host_tree(agent, name, host_path, root, cfile, token, metrics):
    metrics["host_path_under_docker_root"] = path_under(host_path, root)
    hmounts = parse_mountinfo(read_text("/proc/self/mountinfo"))
    hm = find_mount(hmounts, os.path.realpath(host_path))
    metrics["host_path_fstype"] = hm["fstype"] if hm else None
    try:
        metrics["host_path_on_docker_root_fs"] = (
            os.stat(host_path).st_dev == os.stat(root).st_dev)
    except (OSError, TypeError):
        pass
    (metrics["host_can_read"], metrics["host_can_write"],
     metrics["container_sees_host_write"]) = _read_and_change(agent, name, host_path, cfile,
                                                             token)


def _from_daemon_ns(agent, name, insp, root, cfile, token, metrics):
    """Not in the host's tree: the host reaches it only through the daemon's namespace."""
    via = "/proc/%d/root" % metrics["daemon_pid"]
    for cand in storage_candidates(insp, root, metrics["storage_driver"]):
        p = via + cand.rstrip("/") + cfile
        if os.path.isfile(p):
            metrics["daemon_ns_path"] = p
            break
    if metrics["daemon_ns_path"]:
        (metrics["host_can_read_via_daemon_ns"], metrics["host_can_write_via_daemon_ns"],
         metrics["container_sees_daemon_ns_write"]) = _read_and_change(
            agent, name, metrics["daemon_ns_path"], cfile, token)
    if metrics["container_root_mounted_in_host_ns"] is False:
        # from its own tree the host can neither read nor change them (the article's
        # "cannot operate on the container's files directly")
        metrics["host_can_read"] = metrics["host_can_write"] = False


def experiment_storage_location(agent, metrics):
    """Where do a container's files live on the host, and can the host change them?"""
    dfacts = (agent.facts or {}).get("docker") or {}
    root = dfacts.get("root_dir")
    metrics.update(_initial_metrics(dfacts))
    agent.ensure_run_dir()
    metrics.update(agent.probe_image())
    token = random_token()
    cfile = "/labctl-probe-%s.txt" % token
    metrics["container_file"] = cfile
    sleep_s = int(agent.timeout) + 120
    name, cid = agent.start_container("storage", metrics["probe_image"],
                                      ["/bin/sleep", str(sleep_s)])
    try:
        rm = _write_in_container(agent, name, token, cfile, metrics)
        insp = inspect_state(agent.docker, name, agent.deadline.remaining(30))
        metrics["graph_driver"] = (insp.get("GraphDriver") or {}).get("Name") or \
            insp.get("Driver") or None
        ids = [insp.get("Id") or cid]
        host_path = _find_on_host(agent, insp, root, cfile, metrics)
        metrics["host_path"] = host_path
        metrics["in_host_tree"] = host_path is not None
        if rm and metrics["container_root_is_block_device"]:
            _where_mounted(rm, metrics)
        if host_path:
            _from_host_tree(agent, name, host_path, root, cfile, token, metrics)
            metrics["container_id"] = (insp.get("Id") or cid)[:12]
        elif metrics["daemon_mount_ns"] == "private" and metrics["daemon_pid"]:
            _from_daemon_ns(agent, name, insp, root, cfile, token, metrics)
            metrics["container_id"] = (insp.get("Id") or cid)[:12]
        return storage_verdict(metrics, ids)
    finally:
        agent.remove_container(name)
