# -*- coding: utf-8 -*-
"""storage-host-mount: the article's CentOS 7.0 experiment done by hand (Nakai's method).

On a device-mapper engine, a second thin device is made over the running container's own thin
volume (`dmsetup create NAME --table "0 SECTORS thin POOL DEVICE_ID"`) and mounted on the host,
in the host's mount namespace.  Then, step by step, with each step's result and errno: the host
reads a file the container wrote; the host writes a file (does the container see it?); the
container writes again; the host reads again (after dropping its caches); the host remounts
and reads once more.  Last the mount and the device go, and the container must still answer.
The kernel's messages of the while are kept.

Mounting one filesystem twice at once can damage it: this runs only on hosts marked disposable
(the controller passes --disposable for them; every lab host is).
"""

from __future__ import absolute_import, division, print_function

import json
import os

from .errors import ExperimentError, SkipExperiment
from .handmount import DEVICE_PREFIX, release_hand_mount
from .hostpaths import NOFOLLOW, ensure_local_dir, open_new
from .sampling import inspect_state
from .text import errno_text, one_line, random_token, read_text, run_cmd, which, write_and_sync

MOUNT_DIR = "hostmount"


def _metadata(root, cid):
    """device-mapper's record of a container's thin device: {"device_id": N, "size": B, ...}."""
    text = read_text(os.path.join(root, "devicemapper", "metadata", cid))
    try:
        data = json.loads(text or "")
    except ValueError:
        return None
    return data if isinstance(data, dict) and "device_id" in data else None


def _read(path):
    """(ok, content or errno text) of one small file (never through a link: the path is in a
    container's filesystem, where a link would point into the host's)."""
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW)
        try:
            return True, os.read(fd, 4096).decode("utf-8", "replace").strip()
        finally:
            os.close(fd)
    except (IOError, OSError) as exc:
        return False, errno_text(exc)


def _write(path, text):
    try:
        write_and_sync(open_new(path, 0o644), text.encode("utf-8") + b"\n")
        return True, ""
    except (IOError, OSError) as exc:
        return False, errno_text(exc)


def _drop_caches():
    try:
        f = open("/proc/sys/vm/drop_caches", "w")
        try:
            f.write("3\n")
        finally:
            f.close()
    except (IOError, OSError):
        pass


def _kernel_lines(since):
    """The kernel's messages newer than ``since`` (seconds since boot), about the filesystem
    and the mapper devices (dmesg -k with times)."""
    res = run_cmd(["dmesg", "-k"], 30)
    out = []
    for line in (res.out or "").splitlines() if res.ok else []:
        if not line.startswith("[") or "]" not in line:
            continue
        try:
            t = float(line[1 : line.index("]")].strip())
        except ValueError:
            continue
        if t >= since and ("EXT4" in line or "device-mapper" in line or "dm-" in line):
            out.append(one_line(line, 200))
    return out[-12:]


def _uptime():
    return float((read_text("/proc/uptime") or "0 0").split()[0])


def _refusal(agent, dfacts):
    """Why this host cannot run the check, or None."""
    if not agent.disposable:
        return (
            "only on a disposable host (labctl_disposable=true; lab hosts are): it mounts "
            "the container's filesystem twice at once, which can damage it"
        )
    if dfacts.get("storage_driver") != "devicemapper":
        return "needs the devicemapper storage driver (this engine runs %s)" % dfacts.get(
            "storage_driver"
        )
    if os.getuid() != 0 or not which("dmsetup"):
        return "needs root and dmsetup (the device-mapper tools)"
    return None


def experiment_storage_host_mount(agent, metrics):
    """The container's thin volume mounted a second time, by hand, on the host: what reads and
    writes do, before and after the container writes, and after a remount."""
    dfacts = (agent.facts or {}).get("docker") or {}
    refusal = _refusal(agent, dfacts)
    if refusal:
        raise SkipExperiment(refusal)
    pool = (dfacts.get("driver_status") or {}).get("Pool Name")
    root = dfacts.get("root_dir") or "/var/lib/docker"
    if not pool:
        raise ExperimentError("docker-info", "`docker info` names no device-mapper pool")
    token = random_token()
    metrics.update(agent.probe_image())
    name, cid = agent.start_container(
        "hostmount", metrics["probe_image"], ["/bin/sleep", str(int(agent.timeout) + 120)]
    )
    try:
        cid = cid or inspect_state(agent.docker, name, agent.deadline.remaining(30)).get("Id")
        meta = _metadata(root, cid or "")
        if meta is None:
            raise ExperimentError(
                "devicemapper",
                "no thin-device record for the container "
                "under %s" % os.path.join(root, "devicemapper", "metadata"),
            )
        _hand_mount(agent, name, pool, meta, token, metrics)
        res = agent.docker_cmd(["exec", name, "/bin/cat", "/labctl-hm-a"], 60)
        metrics["container_ok_after"] = res.ok
        return hand_mount_verdict(metrics)
    finally:
        agent.remove_container(name)


def _hand_mount(agent, name, pool, meta, token, metrics):
    """Make the second thin device, mount it, run the steps; unmount and remove on every
    path.  The kernel's messages of the while go in the metrics."""
    dev = DEVICE_PREFIX + agent.run_id
    mnt = ensure_local_dir(os.path.join(agent.ensure_run_dir(), MOUNT_DIR))
    table = "0 %d thin /dev/mapper/%s %d" % (int(meta["size"]) // 512, pool, int(meta["device_id"]))
    metrics.update(
        {
            "thin_device_id": int(meta["device_id"]),
            "pool": pool,
            "hand_device": "/dev/mapper/" + dev,
            "table": table,
        }
    )
    since = _uptime()
    try:
        agent.docker_cmd(
            ["exec", name, "/bin/sh", "-c", "echo %s-a > /labctl-hm-a && sync" % token], 60
        )
        res = run_cmd(["dmsetup", "create", dev, "--table", table], 60)
        if not res.ok:
            raise ExperimentError("dmsetup", "dmsetup create failed (%s)" % res.describe())
        res = run_cmd(["mount", "-o", "nosuid,nodev,noexec", "/dev/mapper/" + dev, mnt], 60)
        metrics["mount_ok"] = res.ok
        metrics["mount_error"] = None if res.ok else one_line(res.err or res.out, 200)
        if not res.ok:
            raise ExperimentError(
                "mount", "the hand-made thin device did not mount: %s" % metrics["mount_error"]
            )
        _steps(agent, name, mnt, dev, token, metrics)
    finally:
        left = release_hand_mount(agent.run_dir, agent.run_id)
        metrics["released"] = not left
        if left:
            metrics["release_error"] = "could not release " + ", ".join(left)
        lines = _kernel_lines(since)
        metrics["kernel_messages"] = " | ".join(lines) or None
        # ext4 replays the journal of a filesystem mounted elsewhere: the hand mount writes
        metrics["journal_replayed"] = any("recovery complete" in line for line in lines)


def _steps(agent, name, mnt, dev, token, metrics):
    """The article's steps, each with its result and errno: read, write, let the container
    write, read again (as a person would: no cache dropped), then after dropping the host's
    caches, then after a remount."""
    base = os.path.join(mnt, "rootfs")
    ok, said = _read(os.path.join(base, "labctl-hm-a"))
    metrics["read_before_ok"] = ok and said == token + "-a"
    metrics["read_before_error"] = None if ok else said
    ok, why = _write(os.path.join(base, "labctl-hm-b"), token + "-b")
    metrics["write_ok"], metrics["write_error"] = ok, why or None
    res = agent.docker_cmd(["exec", name, "/bin/cat", "/labctl-hm-b"], 60)
    metrics["container_sees_write"] = res.ok and res.out.strip() == token + "-b"
    agent.docker_cmd(
        [
            "exec",
            name,
            "/bin/sh",
            "-c",
            "echo %s-c > /labctl-hm-a && echo %s-c > /labctl-hm-c && sync" % (token, token),
        ],
        60,
    )
    _read_after(base, token, "read_after_container_wrote", metrics)
    _drop_caches()
    _read_after(base, token, "read_after_drop_caches", metrics)
    run_cmd(["umount", mnt], 60)
    res = run_cmd(["mount", "-o", "nosuid,nodev,noexec", "/dev/mapper/" + dev, mnt], 60)
    if res.ok:
        _read_after(base, token, "read_after_remount", metrics)
    else:
        metrics["read_after_remount_ok"] = False
        metrics["read_after_remount_error"] = one_line(res.err or res.out, 200)


def _read_after(base, token, step, metrics):
    """After the container wrote: the file it made (``STEP_ok``/``STEP_error``) and the file it
    rewrote (``STEP_stale``: the host still reads the old text)."""
    ok, said = _read(os.path.join(base, "labctl-hm-c"))
    metrics[step + "_ok"] = ok and said == token + "-c"
    metrics[step + "_error"] = None if ok else one_line(said, 200)
    ok, said = _read(os.path.join(base, "labctl-hm-a"))
    metrics[step + "_stale"] = bool(ok and said != token + "-c")


def _read_words(m, step):
    """One read step in words: "yes", "no (ERRNO ...)", plus a stale rewritten file."""
    if m.get(step + "_ok"):
        said = "yes"
    elif m.get(step + "_error"):
        said = "no (%s)" % m[step + "_error"]
    else:
        said = "no (wrong content)"
    return said + (
        " and a rewritten file still shows its old text" if m.get(step + "_stale") else ""
    )


def article_steps(m):
    """Whether the steps went as the article tells them on CentOS 7.0: reads yes, writes fail,
    after the container writes reads fail, after a remount reads work."""
    return bool(
        m.get("read_before_ok")
        and not m.get("write_ok")
        and not m.get("read_after_container_wrote_ok")
        and m.get("read_after_remount_ok")
    )


def hand_mount_verdict(m):
    """The steps in words, beside the article's account."""
    parts = [
        "by hand, a second thin device over the container's volume, mounted on the host: "
        "read " + _read_words(m, "read_before"),
        "write %s (the container %s it)"
        % (
            "yes" if m.get("write_ok") else "no (%s)" % m.get("write_error"),
            "sees" if m.get("container_sees_write") else "does not see",
        ),
        "after the container wrote, read " + _read_words(m, "read_after_container_wrote"),
        "after dropping the host's caches, read " + _read_words(m, "read_after_drop_caches"),
        "after a remount, read " + _read_words(m, "read_after_remount"),
    ]
    if m.get("journal_replayed"):
        parts.append(
            "mounting replayed the journal of the container's live filesystem "
            "(the hand mount wrote to it)"
        )
    parts.append(
        "the container %s afterwards"
        % ("still answers" if m.get("container_ok_after") else "no longer answers")
    )
    return "; ".join(parts) + (
        "; as the article's CentOS 7.0 account"
        if article_steps(m)
        else "; not as the article's CentOS 7.0 account (reads, no writes, then no reads until a "
        "remount)"
    )
