# -*- coding: utf-8 -*-
"""Facts about the host: distribution, kernel, cgroups, filesystems and the Docker engine."""

from __future__ import absolute_import, division, print_function

import os
import socket
import traceback

from .consts import FACTS_CMD_TIMEOUT
from .disklimit import swap_limit_warning
from .docker import daemon_mount_namespace, find_daemon_pid
from .dockerparse import (
    classify_docker_error,
    finish_info,
    json_object,
    parse_docker_info,
    parse_docker_info_json,
    parse_docker_version,
    parse_docker_version_json,
)
from .osparse import (
    detect_distribution,
    distribution_record,
    find_mount,
    host_mounts,
    parse_meminfo,
    parse_proc_cgroups,
)
from .text import one_line, read_int, read_text


def _empty_docker_facts(docker):
    return {
        "path": docker.path, "client_version": None, "server_version": None,
        "api_version": None, "client_api_version": None, "storage_driver": None,
        "backing_filesystem": None, "root_dir": None, "root_dir_source": None,
        "cgroup_driver": None, "cgroup_version": None, "warnings": [], "driver_status": {},
        "kernel_version": None, "operating_system": None, "execution_driver": None,
        "logging_driver": None, "git_commit": None, "go_version": None, "os_arch": None,
        "containers": None, "images": None, "mem_total_bytes": None, "ncpu": None,
        "components": {}, "version_format": None, "info_format": None,
        "error": None, "error_kind": None, "swap_limit_warning": None,
        "daemon_pid": None, "mount_namespace": None,
    }


def _version_facts(docker, facts):
    """`docker version` into ``facts``: JSON where the client supports it (1.8+), else the
    text of any era.  False (and the error in ``facts``) when there is no usable server."""
    res = docker.run(["version", "--format", "{{json .}}"], FACTS_CMD_TIMEOUT)
    if res.missing:
        facts["error_kind"] = "no-docker"
        facts["error"] = ("docker cannot be run (%s: %s); reinstall Docker, e.g. with "
                          "`labctl provision`" % (docker.path, one_line(res.err)))
        return False
    obj = json_object(res.out)
    errors_text = res.err
    if obj is not None and ("Client" in obj or "Server" in obj):
        ver = parse_docker_version_json(obj)
    else:
        res = docker.run(["version"], FACTS_CMD_TIMEOUT)
        ver = parse_docker_version(res.out + "\n" + res.err)
        errors_text = res.err
    if res.timed_out:
        facts["error_kind"] = "docker-timeout"
        facts["error"] = ("`docker version` did not answer within %d s; the daemon may be "
                          "hung: check `systemctl status docker`" % FACTS_CMD_TIMEOUT)
        return False
    for key in ("client_version", "server_version", "client_api_version", "git_commit",
                "go_version", "os_arch", "components"):
        facts[key] = ver[key]
    facts["api_version"] = ver["server_api_version"]
    facts["version_format"] = ver["format"]
    if not ver["server_version"]:
        kind, msg = classify_docker_error(errors_text or "\n".join(ver["errors"]), docker.path)
        facts["error"], facts["error_kind"] = msg, kind
        return False
    docker.server_version = ver["server_version"]
    return True


def _docker_info(docker, facts):
    """`docker info`: JSON from 1.13 on, else text; an error into ``facts``."""
    info = None
    if docker.supports((1, 13)):
        res = docker.run(["info", "--format", "{{json .}}"], FACTS_CMD_TIMEOUT)
        obj = json_object(res.out)
        if obj is not None and obj.get("Driver"):
            info = parse_docker_info_json(obj)
            for line in res.err.splitlines():
                if line.strip().startswith("WARNING:"):
                    info["warnings"].append(line.strip()[len("WARNING:"):].strip())
            info = finish_info(info)
    if info is None:
        res = docker.run(["info"], FACTS_CMD_TIMEOUT)
        info = parse_docker_info(res.out + "\n" + res.err)
        if not res.ok and not info["storage_driver"]:
            if res.timed_out:
                facts["error_kind"] = "docker-timeout"
                facts["error"] = "`docker info` did not answer within %d s" % FACTS_CMD_TIMEOUT
            else:
                kind, msg = classify_docker_error(res.err, docker.path)
                facts["error"], facts["error_kind"] = msg, kind
    return info


def docker_facts(docker):
    """Facts about the docker client and engine; never raises."""
    facts = _empty_docker_facts(docker)
    facts["daemon_pid"] = find_daemon_pid()
    facts["mount_namespace"] = daemon_mount_namespace(facts["daemon_pid"])
    if not docker.path:
        kind, msg = classify_docker_error("", None)
        facts["error"], facts["error_kind"] = msg, kind
        return facts
    if not _version_facts(docker, facts):
        return facts
    info = _docker_info(docker, facts)
    facts["info_format"] = info["format"]
    for key in ("storage_driver", "backing_filesystem", "root_dir", "root_dir_source",
                "cgroup_driver", "cgroup_version", "warnings", "driver_status",
                "kernel_version", "operating_system", "execution_driver", "logging_driver",
                "containers", "images", "mem_total_bytes", "ncpu"):
        facts[key] = info[key]
    for key in ("memory_limit", "swap_limit", "pids_limit"):
        if key in info:
            facts[key] = info[key]
    if info["storage_driver"] or info["warnings"]:
        # "WARNING: No swap limit support": --memory-swap is ignored (Ubuntu 14.04's kernel)
        facts["swap_limit_warning"] = swap_limit_warning(info["warnings"])
    return facts


def fs_facts(path, mounts=None):
    result = {"path": path, "fstype": None, "device": None, "size_bytes": None,
              "free_bytes": None, "inodes": None, "inodes_free": None}
    if not path:
        return result
    if mounts is None:
        mounts = host_mounts()
    real = os.path.realpath(path)
    m = find_mount(mounts, real) if os.path.exists(real) else None
    if m:
        result["fstype"], result["device"] = m["fstype"], m["source"]
    try:
        st = os.statvfs(real)
    except (OSError, AttributeError):
        return result
    frsize = st.f_frsize or st.f_bsize
    result["size_bytes"] = st.f_blocks * frsize
    result["free_bytes"] = st.f_bavail * frsize
    result["inodes"] = st.f_files
    result["inodes_free"] = st.f_ffree
    return result


def cgroup_facts():
    controllers_v2 = read_text("/sys/fs/cgroup/cgroup.controllers")
    if controllers_v2 is not None:
        return {"version": 2, "controllers": sorted(controllers_v2.split())}
    proc = read_text("/proc/cgroups")
    if proc is not None:
        return {"version": 1, "controllers": parse_proc_cgroups(proc)}
    return {"version": None, "controllers": []}


def gather_facts(docker):
    """Everything about the host that the experiments' readers need; never raises."""
    facts = {}
    uname = os.uname()
    facts["hostname"] = socket.gethostname()
    facts["kernel"] = uname[2]
    facts["arch"] = uname[4]
    try:
        facts["distribution"] = detect_distribution()
    except Exception:
        facts["distribution"] = distribution_record()
    try:
        facts["cgroup"] = cgroup_facts()
    except Exception:
        facts["cgroup"] = {"version": None, "controllers": []}
    try:
        facts["docker"] = docker_facts(docker)
    except Exception:
        facts["docker"] = {"error": "could not gather docker facts: %s"
                           % one_line(traceback.format_exc().splitlines()[-1]),
                           "error_kind": "agent-crash"}
    meminfo = parse_meminfo(read_text("/proc/meminfo"))
    root_dir = facts["docker"].get("root_dir")
    try:
        root_fs = fs_facts(root_dir) if root_dir else None
    except Exception:
        root_fs = None
    facts["limits"] = {
        "pid_max": read_int("/proc/sys/kernel/pid_max"),
        "threads_max": read_int("/proc/sys/kernel/threads-max"),
        "mem_total_bytes": meminfo.get("MemTotal"),
        "swap_total_bytes": meminfo.get("SwapTotal"),
        "docker_root_fs": root_fs,
    }
    facts["agent_uid"] = os.getuid()
    return facts
