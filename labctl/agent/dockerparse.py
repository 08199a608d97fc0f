# -*- coding: utf-8 -*-
"""Parsers of the docker command line client's output (`docker version`, `docker info`,
both as text of every Docker release since 1.5 and as JSON): pure."""

from __future__ import absolute_import, division, print_function

import json
import os
import re

from .text import one_line, parse_size, to_int


def classify_docker_error(text, docker_path=None):
    """Map docker CLI stderr to (kind, one-line message saying what to do)."""
    detail = one_line(text, 200)
    low = (text or "").lower()
    if docker_path is None and not text:
        return ("no-docker", "docker is not installed (no `docker` command on PATH); "
                "install Docker, e.g. with `labctl provision`")
    if "permission denied" in low:
        return ("docker-permission", "no permission to use the Docker daemon (%s); run the "
                "agent as root or add the user to the docker group" % detail)
    if ("cannot connect to the docker daemon" in low or "is the docker daemon running" in low
            or "connection refused" in low or "no such file or directory" in low
            or "dial unix" in low or "error during connect" in low):
        return ("docker-daemon-down", "the Docker daemon is not running (%s); start it, "
                "e.g. `systemctl start docker`" % detail)
    return ("docker-error", "docker failed (%s); check `docker info` on the host" % detail)


def _indented_lines(text):
    """The non-blank lines of a CLI's output -> (stripped line, indent)."""
    for raw in (text or "").splitlines():
        stripped = raw.strip()
        if stripped:
            yield stripped, len(raw) - len(raw.lstrip())


def _split_kv(stripped):
    key, sep, value = stripped.partition(":")
    if not sep:
        return None, stripped
    return key.strip(), value.strip()


def _clean_api(value):
    """'1.41 (minimum version 1.12)' -> ('1.41', '1.12'); '1.41 (downgraded from 1.50)'."""
    if not value:
        return None, None
    m = re.match(r"^(\S+)(?:\s*\(minimum version ([^)]+)\))?", value)
    if not m:
        return value, None
    return m.group(1), m.group(2)


def _empty_version():
    return {
        "client_version": None, "client_api_version": None, "client_git_commit": None,
        "client_go_version": None, "client_os_arch": None,
        "server_version": None, "server_api_version": None, "server_min_api_version": None,
        "server_git_commit": None, "server_go_version": None, "server_os_arch": None,
        "server_kernel_version": None, "components": {}, "errors": [],
        "git_commit": None, "go_version": None, "os_arch": None, "format": None,
    }


def _finish_version(v):
    v["git_commit"] = v["server_git_commit"] or v["client_git_commit"]
    v["go_version"] = v["server_go_version"] or v["client_go_version"]
    v["os_arch"] = v["server_os_arch"] or v["client_os_arch"]
    return v


_VERSION_FIELDS = {
    "version": "version", "api version": "api_version", "git commit": "git_commit",
    "go version": "go_version", "os/arch": "os_arch", "kernel version": "kernel_version",
}


def parse_docker_version(text):
    """Parse `docker version` text of any era (flat pre-1.8 lines or Client:/Server: blocks)."""
    v = _empty_version()
    section = None      # "client" | "server"
    sub = None          # component block inside Server: ("Engine", "containerd", ...)
    flat = False
    for stripped, indent in _indented_lines(text):
        if stripped.startswith("WARNING"):
            continue
        if (stripped.startswith("ERROR") or stripped.startswith("FATA")
                or stripped.startswith("Cannot connect") or stripped.startswith("Error")):
            v["errors"].append(stripped)
            continue
        key, value = _split_kv(stripped)
        if key is None:
            continue
        # "Client:", "Server:" or "Server: Docker Engine - Community"
        if indent == 0 and key in ("Client", "Server"):
            section = key.lower()
            sub = None
            continue
        # pre-1.8 flat format: "Client version: 1.5.0", "Go version (client): go1.4.1"
        m = re.match(r"^(Client|Server) (version|API version)$", key)
        m2 = re.match(r"^(.*) \((client|server)\)$", key)
        if indent == 0 and (m or m2):
            flat = True
            if m:
                side, field = m.group(1).lower(), _VERSION_FIELDS[m.group(2).lower()]
            else:
                side, field = m2.group(2), _VERSION_FIELDS.get(m2.group(1).lower())
                if field is None:
                    continue
            if field == "api_version":
                value, minimum = _clean_api(value)
                if side == "server" and minimum:
                    v["server_min_api_version"] = minimum
            v["%s_%s" % (side, field)] = value or None
            continue
        if section is None:
            continue
        rel = indent - 1
        if section == "server" and rel == 0 and value == "":
            sub = key
            continue
        if section == "server" and sub is not None and sub.lower() != "engine":
            if rel >= 1 and key.lower() == "version":
                v["components"][sub.lower()] = value
            continue
        field = _VERSION_FIELDS.get(key.lower())
        if field is None:
            continue
        if field == "api_version":
            value, minimum = _clean_api(value)
            if section == "server" and minimum:
                v["server_min_api_version"] = minimum
        if field == "kernel_version" and section != "server":
            continue
        v["%s_%s" % (section, field)] = value or None
    v["format"] = "flat" if flat else "blocks"
    return _finish_version(v)


def parse_docker_version_json(obj):
    """Parse `docker version --format '{{json .}}'` (a dict) into parse_docker_version keys."""
    v = _empty_version()
    v["format"] = "json"
    client = obj.get("Client") or {}
    server = obj.get("Server") or {}
    if client:
        v["client_version"] = client.get("Version") or None
        v["client_api_version"] = client.get("ApiVersion") or None
        v["client_git_commit"] = client.get("GitCommit") or None
        v["client_go_version"] = client.get("GoVersion") or None
        if client.get("Os") and client.get("Arch"):
            v["client_os_arch"] = "%s/%s" % (client["Os"], client["Arch"])
    if server:
        v["server_version"] = server.get("Version") or None
        v["server_api_version"] = server.get("ApiVersion") or None
        v["server_min_api_version"] = server.get("MinAPIVersion") or None
        v["server_git_commit"] = server.get("GitCommit") or None
        v["server_go_version"] = server.get("GoVersion") or None
        v["server_kernel_version"] = server.get("KernelVersion") or None
        if server.get("Os") and server.get("Arch"):
            v["server_os_arch"] = "%s/%s" % (server["Os"], server["Arch"])
        for comp in server.get("Components") or []:
            name = (comp.get("Name") or "").lower()
            if name and name != "engine":
                v["components"][name] = comp.get("Version")
    return _finish_version(v)


def _empty_info():
    return {
        "storage_driver": None, "backing_filesystem": None, "root_dir": None,
        "root_dir_source": None, "cgroup_driver": None, "cgroup_version": None,
        "kernel_version": None, "operating_system": None, "server_version": None,
        "client_version": None, "warnings": [], "errors": [], "driver_status": {},
        "containers": None, "images": None, "mem_total": None, "mem_total_bytes": None,
        "ncpu": None, "name": None, "id": None, "execution_driver": None,
        "logging_driver": None, "architecture": None, "os_type": None, "format": None,
    }


_INFO_FIELDS = {
    "Storage Driver": "storage_driver", "Docker Root Dir": "root_dir",
    "Cgroup Driver": "cgroup_driver", "Cgroup Version": "cgroup_version",
    "Kernel Version": "kernel_version", "Operating System": "operating_system",
    "Server Version": "server_version", "Containers": "containers", "Images": "images",
    "Total Memory": "mem_total", "CPUs": "ncpu", "Name": "name", "ID": "id",
    "Execution Driver": "execution_driver", "Logging Driver": "logging_driver",
    "Architecture": "architecture", "OSType": "os_type",
}


def _derive_root_dir(driver, status):
    """Docker's root dir from old `docker info` (no 'Docker Root Dir' line)."""
    root = status.get("Root Dir")
    if root and root.startswith("/"):
        return os.path.dirname(root.rstrip("/"))
    for key in ("Data loop file", "Metadata loop file", "Data file", "Metadata file"):
        path = status.get(key) or ""
        if path.startswith("/") and "/devicemapper/" in path:
            return path.split("/devicemapper/")[0] or "/"
    return None


def finish_info(info):
    for key in ("containers", "images", "ncpu"):
        if info[key] is not None and not isinstance(info[key], int):
            info[key] = to_int(info[key])
    if info["cgroup_version"] is not None:
        cv = to_int(info["cgroup_version"])
        info["cgroup_version"] = cv if cv is not None else info["cgroup_version"]
    if info["mem_total"] is not None and info["mem_total_bytes"] is None:
        info["mem_total_bytes"] = parse_size(info["mem_total"])
    status = info["driver_status"]
    info["backing_filesystem"] = status.get("Backing Filesystem") or None
    if info["root_dir"]:
        info["root_dir_source"] = "docker-info"
    elif info["storage_driver"]:
        derived = _derive_root_dir(info["storage_driver"], status)
        if derived:
            info["root_dir"], info["root_dir_source"] = derived, "derived"
        else:
            info["root_dir"], info["root_dir_source"] = "/var/lib/docker", "default"
    seen = []
    for w in info["warnings"]:
        if w not in seen:
            seen.append(w)
    info["warnings"] = seen
    return info


def parse_docker_info(text):
    """Parse `docker info` text of any era (flat pre-1.13 or Client:/Server: blocks).

    WARNING lines may appear anywhere (stdout or stderr appended).
    """
    info = _empty_info()
    info["format"] = "text"
    section = None
    base = 0
    parent = None
    for stripped, indent in _indented_lines(text):
        if stripped.startswith("WARNING:"):
            info["warnings"].append(stripped[len("WARNING:"):].strip())
            continue
        if stripped.startswith("ERROR:") or stripped.startswith("FATA"):
            info["errors"].append(stripped)
            continue
        key, value = _split_kv(stripped)
        # "Client:", "Server:" or "Client: Docker Engine - Community"
        if indent == 0 and key in ("Client", "Server"):
            section = key.lower()
            base = 1
            parent = None
            continue
        if indent == 0 and section is not None:
            # a line outside the blocks (e.g. an error from stderr)
            if stripped.startswith("Cannot connect") or stripped.startswith("errors"):
                info["errors"].append(stripped)
            continue
        rel = indent - base
        if rel <= 0:
            parent = key
            if key is None:
                continue
            if section == "client":
                if key == "Version":
                    info["client_version"] = value or None
                continue
            field = _INFO_FIELDS.get(key)
            if field:
                info[field] = value if value != "" else None
            continue
        if parent == "Storage Driver" and rel == 1 and key is not None:
            info["driver_status"][key] = value
    return finish_info(info)


def parse_docker_info_json(obj):
    """Parse `docker info --format '{{json .}}'` (a dict) into parse_docker_info keys."""
    info = _empty_info()
    info["format"] = "json"
    info["storage_driver"] = obj.get("Driver") or None
    for pair in obj.get("DriverStatus") or []:
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            info["driver_status"][pair[0]] = pair[1]
    info["root_dir"] = obj.get("DockerRootDir") or None
    info["cgroup_driver"] = obj.get("CgroupDriver") or None
    info["cgroup_version"] = obj.get("CgroupVersion") or None
    info["kernel_version"] = obj.get("KernelVersion") or None
    info["operating_system"] = obj.get("OperatingSystem") or None
    info["server_version"] = obj.get("ServerVersion") or None
    info["containers"] = obj.get("Containers")
    info["images"] = obj.get("Images")
    info["mem_total_bytes"] = obj.get("MemTotal")
    info["ncpu"] = obj.get("NCPU")
    info["name"] = obj.get("Name") or None
    info["id"] = obj.get("ID") or None
    info["execution_driver"] = obj.get("ExecutionDriver") or None
    info["logging_driver"] = obj.get("LoggingDriver") or None
    info["architecture"] = obj.get("Architecture") or None
    info["os_type"] = obj.get("OSType") or None
    for key in ("MemoryLimit", "SwapLimit", "PidsLimit"):
        if key in obj:
            info[re.sub(r"([a-z])([A-Z])", r"\1_\2", key).lower()] = obj.get(key)
    info["warnings"] = [w.replace("WARNING:", "").strip() for w in (obj.get("Warnings") or [])]
    info["errors"] = list(obj.get("ServerErrors") or [])
    client = obj.get("ClientInfo") or {}
    info["client_version"] = client.get("Version") or None
    return finish_info(info)


def json_object(text):
    text = (text or "").strip()
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text.splitlines()[0] if "\n" in text else text)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def parse_inspect(text):
    """`docker inspect NAME` -> the object of NAME ({} when the text is not one)."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if isinstance(data, list) and data:
        return data[0]
    return data if isinstance(data, dict) else {}
