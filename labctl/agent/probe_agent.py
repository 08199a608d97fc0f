# -*- coding: utf-8 -*-
"""labctl probe agent: one stdlib-only file pushed to a lab host and run there.

It gathers facts about the host (distribution, kernel, cgroups, Docker, limits)
and runs the study's experiments against the host's own Docker engine through
the ``docker`` command line client found on PATH.  It runs on Python 2.6
through 3.13 and talks to Docker 1.5 through today.

Commands::

    python probe_agent.py run --run-id ID --host NAME --out PATH
        [--experiments storage-location] [--workdir /var/tmp/labctl]
        [--timeout 300]
    python probe_agent.py facts
    python probe_agent.py reap [--workdir DIR]
    python probe_agent.py --version

``run`` is meant to be started detached (setsid/nohup).  It writes its result
atomically to PATH (PATH.tmp, fsync, rename) and appends one JSON object per
line to PATH.progress.  It exits 0 whenever the result was written, also when
the host has no usable Docker (that is a result with status "error"), 2 on
usage errors, and 128+N when stopped by signal N (after writing an
"interrupted" result).

Everything the agent creates is named ``labctl-probe-<run_id>-...`` (the
probe image is ``labctl-probe:<tag>`` and is kept for reuse) and is removed on
every path; a reaper removes what earlier, dead runs left behind.  The agent
never touches a container whose name does not start with ``labctl-probe-``.
"""

from __future__ import absolute_import, division, print_function

import binascii
import errno
import hashlib
import json
import optparse
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback

AGENT_VERSION = "0.1.0"
SCHEMA_VERSION = 1

DEFAULT_WORKDIR = "/var/tmp/labctl"
DEFAULT_TIMEOUT = 300
DEFAULT_EXPERIMENTS = ("storage-location",)
NAME_PREFIX = "labctl-probe-"
IMAGE_REPO = "labctl-probe"
DEFAULT_PROBE_TOOLS = ("sh", "cat", "dd", "sleep", "stat", "head", "mkdir",
                       "touch", "rm", "ls", "sync", "df")
TOOL_DIRS = ("/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin")
FACTS_CMD_TIMEOUT = 30
CLEANUP_CMD_TIMEOUT = 60
FIND_TIME_LIMIT = 20.0
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

try:  # Python 2
    TEXT_TYPE = unicode  # noqa: F821
    _unichr = unichr  # noqa: F821
except NameError:  # Python 3
    TEXT_TYPE = str
    _unichr = chr


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------

def to_text(value):
    """Return ``value`` as text (unicode on Python 2, str on Python 3)."""
    if value is None:
        return None
    if isinstance(value, TEXT_TYPE):
        return value
    try:
        return value.decode("utf-8", "replace")
    except AttributeError:
        return TEXT_TYPE(value)


def read_text(path, limit=None):
    """Read a file as text; None when it cannot be read."""
    try:
        f = open(path, "rb")
    except (IOError, OSError):
        return None
    try:
        try:
            if limit:
                data = f.read(limit)
            else:
                data = f.read()
        except (IOError, OSError):
            return None
    finally:
        f.close()
    return to_text(data)


def first_line(text):
    text = (text or "").strip()
    if not text:
        return ""
    return text.splitlines()[0].strip()


def one_line(text, limit=300):
    """Collapse text to one line for error messages."""
    text = " ".join((text or "").split())
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return text


def iso_utc(ts=None):
    if ts is None:
        ts = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def random_token(nbytes=8):
    return to_text(binascii.hexlify(os.urandom(nbytes)))


def to_int(value):
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def version_tuple(text):
    """'20.10.24+dfsg1' -> (20, 10, 24); '1.13.1-cs9' -> (1, 13, 1); None if unknown."""
    if not text:
        return None
    m = re.match(r"^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", TEXT_TYPE(text))
    if not m:
        return None
    parts = []
    for g in m.groups():
        parts.append(int(g) if g is not None else 0)
    return tuple(parts)


_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000 ** 2, "mb": 1000 ** 2, "g": 1000 ** 3,
    "gb": 1000 ** 3, "t": 1000 ** 4, "tb": 1000 ** 4, "p": 1000 ** 5, "pb": 1000 ** 5,
    "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "tib": 1024 ** 4, "pib": 1024 ** 5,
}


def parse_size(text):
    """Parse docker's human sizes: '107.4 GB' (decimal), '1.8 GiB' (binary), '65.54kB'.

    Returns an int number of bytes, or None when the text is not a size.
    """
    if text is None:
        return None
    m = re.match(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$", TEXT_TYPE(text))
    if not m:
        return None
    unit = m.group(2).lower()
    if unit not in _SIZE_UNITS:
        return None
    return int(round(float(m.group(1)) * _SIZE_UNITS[unit]))


def which(name, path=None):
    """shutil.which for Python 2.6+: the first executable ``name`` on PATH."""
    if path is None:
        path = os.environ.get("PATH", os.defpath)
    for d in path.split(os.pathsep):
        if not d:
            continue
        candidate = os.path.join(d, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def c_env():
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    return env


class CmdResult(object):
    """What one command did: rc, out, err (text), timed_out, missing."""

    def __init__(self, args, rc, out, err, timed_out=False, missing=False, seconds=0.0):
        self.args = args
        self.rc = rc
        self.out = out
        self.err = err
        self.timed_out = timed_out
        self.missing = missing
        self.seconds = seconds

    @property
    def ok(self):
        return self.rc == 0 and not self.timed_out

    def describe(self):
        what = " ".join(self.args[:3])
        if self.missing:
            return "%s: command not found" % what
        if self.timed_out:
            return "%s: timed out after %.0f s" % (what, self.seconds)
        msg = one_line(self.err) or one_line(self.out)
        return "%s: exit %s: %s" % (what, self.rc, msg)


def run_cmd(args, timeout=60.0, stdin_file=None, env=None):
    """Run a command with a time limit (no Popen timeout on Python 2).

    Output goes to anonymous temp files, so a chatty command cannot deadlock
    and the partial output of a timed-out command is still returned.
    """
    if env is None:
        env = c_env()
    out_f = tempfile.TemporaryFile()
    err_f = tempfile.TemporaryFile()
    devnull = None
    start = time.time()
    try:
        if stdin_file is None:
            devnull = open(os.devnull, "rb")
            stdin_file = devnull
        try:
            proc = subprocess.Popen(args, stdin=stdin_file, stdout=out_f, stderr=err_f,
                                    env=env, close_fds=True)
        except OSError as exc:
            missing = exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EACCES)
            return CmdResult(args, 127, "", to_text(str(exc)), missing=missing)
        deadline = start + max(float(timeout), 0.1)
        timed_out = False
        delay = 0.005
        try:
            while proc.poll() is None:
                if time.time() >= deadline:
                    timed_out = True
                    break
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        finally:
            if proc.poll() is None:
                try:
                    proc.kill()
                except OSError:
                    pass
                proc.wait()
        out_f.seek(0)
        err_f.seek(0)
        return CmdResult(args, proc.returncode, to_text(out_f.read()), to_text(err_f.read()),
                         timed_out=timed_out, seconds=time.time() - start)
    finally:
        out_f.close()
        err_f.close()
        if devnull is not None:
            devnull.close()


def write_json_atomic(path, obj):
    """Write JSON to ``path`` atomically: path.tmp, flush, fsync, rename."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        os.makedirs(parent)
    tmp = path + ".tmp"
    data = json.dumps(obj, indent=2, sort_keys=True, separators=(",", ": "))
    f = open(tmp, "wb")
    try:
        f.write(data.encode("utf-8"))
        f.write(b"\n")
        f.flush()
        os.fsync(f.fileno())
    finally:
        f.close()
    os.rename(tmp, path)
    try:  # make the rename itself durable where the platform allows it
        dfd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except (OSError, AttributeError):
        pass


def append_progress(path, event, experiment=None, message=""):
    """Append one progress line (a JSON object) to ``path``; never raises."""
    if not path:
        return
    line = json.dumps({"t": time.time(), "event": event, "experiment": experiment,
                       "message": to_text(message)}, sort_keys=True)
    try:
        f = open(path, "ab")
        try:
            f.write(line.encode("utf-8") + b"\n")
            f.flush()
            os.fsync(f.fileno())
        finally:
            f.close()
    except (IOError, OSError):
        pass


# ---------------------------------------------------------------------------
# parsers (pure)
# ---------------------------------------------------------------------------

def _unquote(value):
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
        value = re.sub(r"\\(.)", r"\1", value)
    return value


def parse_keyvalue_file(text):
    """KEY=value lines (os-release, lsb-release) -> dict."""
    result = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        result[key.strip()] = _unquote(value)
    return result


def _distribution(id_=None, version=None, name=None, pretty=None, source=None):
    return {"id": id_, "version": version, "name": name, "pretty": pretty, "source": source}


def parse_os_release(text):
    kv = parse_keyvalue_file(text)
    if not kv:
        return None
    return _distribution(kv.get("ID") or None, kv.get("VERSION_ID") or None,
                         kv.get("NAME") or None, kv.get("PRETTY_NAME") or None, "os-release")


_REDHAT_IDS = (
    ("centos", "centos"), ("red hat", "rhel"), ("fedora", "fedora"),
    ("scientific", "scientific"), ("oracle", "ol"), ("rocky", "rocky"),
    ("almalinux", "almalinux"), ("cloudlinux", "cloudlinux"),
)


def parse_redhat_release(text):
    """'CentOS release 6.6 (Final)' -> id centos, version 6.6, name CentOS."""
    line = first_line(text)
    if not line:
        return None
    m = re.match(r"^(.*?)\s+release\s+([0-9][0-9.]*)", line)
    if m:
        name, version = m.group(1).strip(), m.group(2)
    else:
        name, version = line, None
    lower = name.lower()
    id_ = None
    for prefix, ident in _REDHAT_IDS:
        if lower.startswith(prefix):
            id_ = ident
            break
    if id_ is None:
        id_ = lower.split()[0] if lower.split() else None
    return _distribution(id_, version, name, line, "redhat-release")


def parse_lsb_release(text):
    kv = parse_keyvalue_file(text)
    if not kv.get("DISTRIB_ID"):
        return None
    ident = kv.get("DISTRIB_ID")
    return _distribution(ident.lower(), kv.get("DISTRIB_RELEASE") or None, ident,
                         kv.get("DISTRIB_DESCRIPTION") or None, "lsb-release")


def parse_debian_version(text):
    line = first_line(text)
    if not line:
        return None
    return _distribution("debian", line, "Debian GNU/Linux", "Debian GNU/Linux " + line,
                         "debian_version")


def detect_distribution(root="/"):
    """Distribution from os-release, else redhat-release, lsb-release, debian_version."""
    def rd(rel):
        return read_text(os.path.join(root, rel))
    found = None
    for rel in ("etc/os-release", "usr/lib/os-release"):
        text = rd(rel)
        if text:
            found = parse_os_release(text)
            if found:
                break
    redhat = parse_redhat_release(rd("etc/redhat-release"))
    debian = parse_debian_version(rd("etc/debian_version"))
    if found is None:
        found = redhat or parse_lsb_release(rd("etc/lsb-release")) or debian
    if found is None:
        return _distribution()
    # the full point release the os-release file leaves out (CentOS 7 says only "7")
    full = found.get("version")
    if redhat and redhat.get("version") and found.get("id") == redhat.get("id"):
        full = redhat["version"]
    elif debian and found.get("id") == "debian":
        full = debian["version"]
    found["version_full"] = full
    return found


def parse_proc_cgroups(text):
    """/proc/cgroups -> sorted list of enabled controller names."""
    names = []
    for line in (text or "").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) >= 4 and fields[3] == "1":
            names.append(fields[0])
    return sorted(names)


def parse_meminfo(text):
    """/proc/meminfo -> {key: bytes}."""
    result = {}
    for line in (text or "").splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if not fields:
            continue
        try:
            value = int(fields[0])
        except ValueError:
            continue
        if len(fields) > 1 and fields[1].lower() == "kb":
            value *= 1024
        result[key.strip()] = value
    return result


def _unescape_mount(field):
    return re.sub(r"\\([0-7]{3})", lambda m: _unichr(int(m.group(1), 8)), field)


def parse_proc_mounts(text):
    """/proc/mounts -> list of dicts source, mountpoint, fstype, options (in order)."""
    mounts = []
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        mounts.append({"source": _unescape_mount(fields[0]),
                       "mountpoint": _unescape_mount(fields[1]),
                       "fstype": fields[2], "options": fields[3]})
    return mounts


def parse_mountinfo(text):
    """/proc/self/mountinfo -> same dicts as parse_proc_mounts."""
    mounts = []
    for line in (text or "").splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf = left.split()
        rf = right.split()
        if len(lf) < 5 or len(rf) < 2:
            continue
        mounts.append({"source": _unescape_mount(rf[1]), "mountpoint": _unescape_mount(lf[4]),
                       "fstype": rf[0], "options": lf[5] if len(lf) > 5 else ""})
    return mounts


def find_mount(mounts, path):
    """The mount that holds ``path``: longest mount point prefix, last one wins."""
    best = None
    best_len = -1
    for m in mounts:
        mp = m["mountpoint"]
        if mp == "/" or path == mp or path.startswith(mp.rstrip("/") + "/"):
            if m["fstype"] == "rootfs" and mp == "/":
                # the initramfs rootfs entry of old kernels; the real / follows it
                if best is None:
                    best, best_len = m, 0
                continue
            if len(mp) >= best_len:
                best, best_len = m, len(mp)
    return best


def root_mount(mounts):
    """The entry of the mount at '/' (from a container's own mount table)."""
    return find_mount(mounts, "/")


def parse_ldd(text):
    """ldd output -> (paths of needed files incl. the loader, names not found)."""
    paths = []
    missing = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        if "=>" in line:
            name, _, rest = line.partition("=>")
            rest = rest.strip()
            if rest.startswith("not found"):
                missing.append(name.strip())
                continue
            target = rest.split(" (")[0].strip()
            if target.startswith("/"):
                paths.append(target)
        elif line.startswith("/"):
            paths.append(line.split(" (")[0].strip())
    unique = []
    for p in paths:
        if p not in unique:
            unique.append(p)
    return unique, missing


def parse_ps_names(text):
    """`docker ps -a` output (table, or '{{.ID}} {{.Names}}' lines) -> [(id, [names])]."""
    rows = []
    for line in (text or "").splitlines():
        if not line.strip() or line.startswith("CONTAINER ID"):
            continue
        fields = line.split()
        if len(fields) < 2:
            continue
        names = [n.strip("/") for n in fields[-1].split(",") if n.strip("/")]
        # a link alias ("other/alias") is not a name of this container
        names = [n for n in names if "/" not in n]
        rows.append((fields[0], names))
    return rows


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
    for raw in (text or "").splitlines():
        if not raw.strip():
            continue
        stripped = raw.strip()
        indent = len(raw) - len(raw.lstrip())
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


def _finish_info(info):
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
    for raw in (text or "").splitlines():
        if not raw.strip():
            continue
        stripped = raw.strip()
        indent = len(raw) - len(raw.lstrip())
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
    return _finish_info(info)


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
    return _finish_info(info)


def _json_object(text):
    text = (text or "").strip()
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text.splitlines()[0] if "\n" in text else text)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


# ---------------------------------------------------------------------------
# docker
# ---------------------------------------------------------------------------

class AgentInterrupted(BaseException):
    """Raised from the SIGTERM/SIGHUP handler; unwinds through every finally."""

    def __init__(self, signum):
        BaseException.__init__(self, signum)
        self.signum = signum


class ExperimentError(Exception):
    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind
        self.msg = message


class Docker(object):
    """The `docker` CLI on PATH."""

    def __init__(self, path=None):
        self.path = path if path is not None else which("docker")
        self.server_version = None

    def run(self, args, timeout=60.0, stdin_file=None):
        if not self.path:
            return CmdResult(["docker"] + list(args), 127, "", "docker: not found", missing=True)
        return run_cmd([self.path] + list(args), timeout=timeout, stdin_file=stdin_file)

    def supports(self, minimum):
        vt = version_tuple(self.server_version)
        return vt is not None and vt >= minimum

    def container_names(self, timeout=CLEANUP_CMD_TIMEOUT):
        """All containers as [(id, [names])]; None when docker cannot tell."""
        res = self.run(["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}"], timeout)
        if not res.ok:
            res = self.run(["ps", "-a", "--no-trunc"], timeout)
            if not res.ok:
                return None
        return parse_ps_names(res.out)

    def remove_container(self, name, timeout=CLEANUP_CMD_TIMEOUT):
        if not name.startswith(NAME_PREFIX):  # never touch anything else
            return False
        res = self.run(["rm", "-f", "-v", name], timeout)
        return res.ok


def docker_facts(docker):
    """Facts about the docker client and engine; never raises."""
    facts = {
        "path": docker.path, "client_version": None, "server_version": None,
        "api_version": None, "client_api_version": None, "storage_driver": None,
        "backing_filesystem": None, "root_dir": None, "root_dir_source": None,
        "cgroup_driver": None, "cgroup_version": None, "warnings": [], "driver_status": {},
        "kernel_version": None, "operating_system": None, "execution_driver": None,
        "logging_driver": None, "git_commit": None, "go_version": None, "os_arch": None,
        "containers": None, "images": None, "mem_total_bytes": None, "ncpu": None,
        "components": {}, "version_format": None, "info_format": None,
        "error": None, "error_kind": None,
    }
    if not docker.path:
        kind, msg = classify_docker_error("", None)
        facts["error"], facts["error_kind"] = msg, kind
        return facts
    # version: JSON where the client supports it (1.8+), else the text of any era
    res = docker.run(["version", "--format", "{{json .}}"], FACTS_CMD_TIMEOUT)
    if res.missing:
        facts["error_kind"] = "no-docker"
        facts["error"] = ("docker cannot be run (%s: %s); reinstall Docker, e.g. with "
                          "`labctl provision`" % (docker.path, one_line(res.err)))
        return facts
    obj = _json_object(res.out)
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
        return facts
    for key in ("client_version", "server_version", "client_api_version", "git_commit",
                "go_version", "os_arch", "components"):
        facts[key] = ver[key]
    facts["api_version"] = ver["server_api_version"]
    facts["version_format"] = ver["format"]
    if not ver["server_version"]:
        kind, msg = classify_docker_error(errors_text or "\n".join(ver["errors"]), docker.path)
        facts["error"], facts["error_kind"] = msg, kind
        return facts
    docker.server_version = ver["server_version"]
    # info: JSON from 1.13 on, else text
    info = None
    if docker.supports((1, 13)):
        res = docker.run(["info", "--format", "{{json .}}"], FACTS_CMD_TIMEOUT)
        obj = _json_object(res.out)
        if obj is not None and obj.get("Driver"):
            info = parse_docker_info_json(obj)
            for line in res.err.splitlines():
                if line.strip().startswith("WARNING:"):
                    info["warnings"].append(line.strip()[len("WARNING:"):].strip())
            info = _finish_info(info)
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
    facts["info_format"] = info["format"]
    for key in ("storage_driver", "backing_filesystem", "root_dir", "root_dir_source",
                "cgroup_driver", "cgroup_version", "warnings", "driver_status",
                "kernel_version", "operating_system", "execution_driver", "logging_driver",
                "containers", "images", "mem_total_bytes", "ncpu"):
        facts[key] = info[key]
    for key in ("memory_limit", "swap_limit", "pids_limit"):
        if key in info:
            facts[key] = info[key]
    return facts


# ---------------------------------------------------------------------------
# facts
# ---------------------------------------------------------------------------

def _read_int(path):
    return to_int(read_text(path))


def fs_facts(path, mounts=None):
    result = {"path": path, "fstype": None, "device": None, "size_bytes": None,
              "free_bytes": None, "inodes": None, "inodes_free": None}
    if not path:
        return result
    if mounts is None:
        mounts = parse_mountinfo(read_text("/proc/self/mountinfo")) or \
            parse_proc_mounts(read_text("/proc/mounts"))
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
        facts["distribution"] = _distribution()
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
        "pid_max": _read_int("/proc/sys/kernel/pid_max"),
        "threads_max": _read_int("/proc/sys/kernel/threads-max"),
        "mem_total_bytes": meminfo.get("MemTotal"),
        "swap_total_bytes": meminfo.get("SwapTotal"),
        "docker_root_fs": root_fs,
    }
    facts["agent_uid"] = os.getuid()
    return facts


# ---------------------------------------------------------------------------
# the probe image (no registry: a tarball of the host's own tools)
# ---------------------------------------------------------------------------

def find_tool(name):
    for d in TOOL_DIRS:
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def _loader_candidates():
    found = []
    for d in ("/lib64", "/lib", "/usr/lib64", "/usr/lib"):
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in sorted(names):
            if n.startswith("ld-linux") or n.startswith("ld64.so") or n.startswith("ld-musl"):
                found.append(os.path.join(d, n))
    return found


def shared_libraries(binary):
    """Files (libraries and loader) a dynamic binary needs, by ldd or the loader."""
    ldd = which("ldd") or find_tool("ldd")
    res = None
    if ldd:
        res = run_cmd([ldd, binary], timeout=30)
    if res is None or (res.rc != 0 and "not a dynamic" not in (res.out + res.err)):
        for loader in _loader_candidates():
            res = run_cmd([loader, "--list", binary], timeout=30)
            if res.ok:
                break
    if res is None:
        return [], []
    return parse_ldd(res.out)


def probe_image_plan(tools=DEFAULT_PROBE_TOOLS):
    """Which host files go where in the image: [(arcname, kind, source_or_target)].

    kind is "file" (source = host path) or "symlink" (target = link text).
    """
    entries = {}
    needed = []
    for tool in tools:
        found = find_tool(tool)
        if not found:
            continue
        real = os.path.realpath(found)
        base = os.path.basename(real)
        if base == tool:
            entries["/bin/" + tool] = ("file", real)
        else:  # multi-call binaries (busybox, dash as sh) keep argv[0] through a link
            entries["/bin/" + base] = ("file", real)
            entries["/bin/" + tool] = ("symlink", base)
        if real not in needed:
            needed.append(real)
    for binary in needed:
        libs, _missing = shared_libraries(binary)
        for lib in libs:
            if lib not in entries:
                entries[lib] = ("file", os.path.realpath(lib))
    if os.path.isfile("/etc/ld.so.cache") and entries:
        entries["/etc/ld.so.cache"] = ("file", "/etc/ld.so.cache")
    plan = []
    for arc in sorted(entries):
        kind, src = entries[arc]
        plan.append((arc, kind, src))
    return plan


def probe_image_tag(plan):
    h = hashlib.sha256()
    h.update(("labctl-probe %s\n" % AGENT_VERSION).encode("utf-8"))
    for arc, kind, src in plan:
        size = os.path.getsize(src) if kind == "file" else 0
        target = src if kind == "symlink" else ""
        h.update(("%s %s %d %s\n" % (arc, kind, size, target)).encode("utf-8"))
    return h.hexdigest()[:12]


def write_probe_tar(plan, tar_path):
    """Write the image tarball; returns its size in bytes."""
    dirs = set(["/tmp", "/proc", "/sys", "/dev", "/etc", "/bin"])
    for arc, _kind, _src in plan:
        d = os.path.dirname(arc)
        while d and d != "/":
            dirs.add(d)
            d = os.path.dirname(d)
    now = int(time.time())
    tar = tarfile.open(tar_path, "w", format=tarfile.GNU_FORMAT)
    try:
        for d in sorted(dirs):
            ti = tarfile.TarInfo(d.lstrip("/"))
            ti.type = tarfile.DIRTYPE
            ti.mode = 0o1777 if d == "/tmp" else 0o755
            ti.mtime = now
            tar.addfile(ti)
        for arc, kind, src in plan:
            ti = tarfile.TarInfo(arc.lstrip("/"))
            ti.mtime = now
            if kind == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = src
                ti.mode = 0o777
                tar.addfile(ti)
                continue
            st = os.stat(src)
            ti.size = st.st_size
            ti.mode = st.st_mode & 0o7777
            f = open(src, "rb")
            try:
                tar.addfile(ti, f)
            finally:
                f.close()
    finally:
        tar.close()
    return os.path.getsize(tar_path)


def ensure_probe_image(docker, work_dir, tools=DEFAULT_PROBE_TOOLS, timeout=120):
    """Build (or reuse) labctl-probe:<tag> from the host's own tools via `docker import`."""
    plan = probe_image_plan(tools)
    files = [arc for arc, _kind, _src in plan]
    if not [a for a in files if a.startswith("/bin/")] or "/bin/sh" not in files:
        raise ExperimentError("probe-image", "cannot build the probe image: no /bin/sh "
                              "found on the host (looked in %s)" % ", ".join(TOOL_DIRS))
    tag = probe_image_tag(plan)
    image = "%s:%s" % (IMAGE_REPO, tag)
    info = {"probe_image": image, "probe_image_files": len(plan), "probe_image_built": False,
            "probe_image_bytes": None}
    res = docker.run(["inspect", "--format", "{{.Id}}", image], 30)
    if res.ok and res.out.strip():
        return info
    tar_path = os.path.join(work_dir, "probe-image-%s.tar" % tag)
    try:
        info["probe_image_bytes"] = write_probe_tar(plan, tar_path)
        f = open(tar_path, "rb")
        try:
            res = docker.run(["import", "-", image], timeout, stdin_file=f)
        finally:
            f.close()
    finally:
        try:
            os.remove(tar_path)
        except OSError:
            pass
    if not res.ok:
        raise ExperimentError("probe-image", "`docker import` of the probe image failed (%s)"
                              % res.describe())
    info["probe_image_built"] = True
    return info


# ---------------------------------------------------------------------------
# run bookkeeping: pid files, reaper, signals
# ---------------------------------------------------------------------------

def _proc_start_time(pid):
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
        now = _proc_start_time(pid)
        if now is not None and now != start_time:
            return False  # the pid was reused by another process
    return True


def runs_dir(workdir):
    return os.path.join(workdir, "runs")


def write_pid_file(run_dir):
    path = os.path.join(run_dir, "agent.pid")
    f = open(path, "w")
    try:
        f.write("%d %s\n" % (os.getpid(), _proc_start_time(os.getpid()) or ""))
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


def reap(workdir, docker, own_run_id=None):
    """Remove leftovers of dead runs: their labctl-probe-<run>-* containers and run dirs."""
    removed = {"containers": [], "workdirs": [], "kept_live_runs": [], "errors": []}
    live = live_agent_run_ids()
    if own_run_id:
        live.add(own_run_id)
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
    for path in dead_dirs:
        shutil.rmtree(path, True)
        if not os.path.exists(path):
            removed["workdirs"].append(path)
    return removed


_SIGNALS = {"received": None, "defer": False}


def _on_signal(signum, frame):
    if _SIGNALS["received"] is None:
        _SIGNALS["received"] = signum
        if not _SIGNALS["defer"]:
            raise AgentInterrupted(signum)


def install_signal_handlers():
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, _on_signal)


# ---------------------------------------------------------------------------
# the agent's run context
# ---------------------------------------------------------------------------

class Deadline(object):
    def __init__(self, seconds):
        self.end = time.time() + seconds

    def remaining(self, cap=None):
        left = self.end - time.time()
        if left <= 0:
            raise ExperimentError("timeout", "the run's time budget (--timeout) is used up")
        if cap is not None:
            return min(left, cap)
        return left


class Agent(object):
    def __init__(self, run_id, host, workdir, timeout, progress_path=None, docker=None):
        self.run_id = run_id
        self.host = host
        self.workdir = workdir
        self.run_dir = os.path.join(runs_dir(workdir), run_id)
        self.timeout = timeout
        self.deadline = Deadline(timeout)
        self.progress_path = progress_path
        self.docker = docker or Docker()
        self.containers = []
        self.facts = None

    def progress(self, event, experiment=None, message=""):
        append_progress(self.progress_path, event, experiment, message)

    def container_name(self, suffix):
        return "%s%s-%s" % (NAME_PREFIX, self.run_id, suffix)

    def docker_cmd(self, args, cap=60.0, stdin_file=None):
        return self.docker.run(args, self.deadline.remaining(cap), stdin_file=stdin_file)

    def start_container(self, suffix, image, command):
        name = self.container_name(suffix)
        args = ["run", "-d", "--net=none", "--name", name]
        if self.docker.supports((1, 6)):
            args += ["--label", "labctl.run=%s" % self.run_id]
        args += [image] + list(command)
        self.containers.append(name)
        res = self.docker_cmd(args, 120)
        if not res.ok:
            raise ExperimentError("docker-run", "could not start the probe container (%s)"
                                  % res.describe())
        return name, res.out.strip()

    def remove_container(self, name):
        ok = self.docker.remove_container(name)
        if ok and name in self.containers:
            self.containers.remove(name)
        return ok

    def cleanup(self):
        """Remove every container of this run (also ones whose `docker run` timed out)."""
        for name in list(self.containers):
            self.remove_container(name)
        if self.docker.path and self.docker.server_version:
            rows = self.docker.container_names() or []
            prefix = NAME_PREFIX + self.run_id + "-"
            for _cid, names in rows:
                for n in names:
                    if n.startswith(prefix):
                        self.remove_container(n)
        shutil.rmtree(self.run_dir, True)


# ---------------------------------------------------------------------------
# experiment: storage-location
# ---------------------------------------------------------------------------

def inspect_container(agent, name):
    res = agent.docker_cmd(["inspect", name], 30)
    if not res.ok:
        return {}
    try:
        data = json.loads(res.out)
    except ValueError:
        return {}
    if isinstance(data, list) and data:
        return data[0]
    return data if isinstance(data, dict) else {}


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
    end = time.time() + time_limit
    matches = []
    timed_out = False
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: None):
        if filename in filenames:
            matches.append(os.path.join(dirpath, filename))
            if _path_rank(matches[-1]) < 10:
                break
        if time.time() > end:
            timed_out = True
            break
        # <root>/containers holds logs and config, never a container's files
        dirnames[:] = [d for d in dirnames if not (dirpath == root and d in ("containers",))]
    matches.sort(key=_path_rank)
    return matches, timed_out


def _under(path, root):
    if not path or not root:
        return False
    p = os.path.realpath(path)
    r = os.path.realpath(root).rstrip("/")
    return p.startswith(r + "/")


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
    if m.get("container_root_is_block_device"):
        return ("separate block device: the container's root is %s on %s, not in the host's "
                "file tree (the article's CentOS 7.0 device-mapper finding)" % (fstype, source))
    return ("not found on the host: the container's file was not found under %s (the "
            "container's root is %s on %s)" % (m.get("docker_root_dir") or "the docker root",
                                                 fstype, source))


def experiment_storage_location(agent, metrics):
    """Where do a container's files live on the host, and can the host change them?"""
    dfacts = (agent.facts or {}).get("docker") or {}
    root = dfacts.get("root_dir")
    metrics.update({
        "container_file": None, "host_path": None, "found_by": None,
        "host_path_under_docker_root": False, "host_path_on_docker_root_fs": None,
        "host_path_fstype": None,
        "host_can_read": None, "host_can_write": None, "container_sees_host_write": None,
        "container_root_fstype": None, "container_root_source": None,
        "container_root_is_block_device": False,
        "storage_driver": dfacts.get("storage_driver"), "docker_root_dir": root,
        "graph_driver": None, "find_timed_out": None, "agent_is_root": os.getuid() == 0,
    })
    if not os.path.isdir(agent.run_dir):
        os.makedirs(agent.run_dir)
    metrics.update(ensure_probe_image(agent.docker, agent.run_dir,
                                      timeout=agent.deadline.remaining(300)))
    token = random_token()
    cfile = "/labctl-probe-%s.txt" % token
    metrics["container_file"] = cfile
    sleep_s = int(agent.timeout) + 120
    name, cid = agent.start_container("storage", metrics["probe_image"],
                                      ["/bin/sleep", str(sleep_s)])
    try:
        res = agent.docker_cmd(["exec", name, "/bin/sh", "-c",
                                "echo %s > %s" % (token, cfile)], 60)
        if not res.ok:
            raise ExperimentError("docker-exec", "could not write the file inside the "
                                  "container (%s)" % res.describe())
        # the container's root filesystem, from its own mount table
        res = agent.docker_cmd(["exec", name, "/bin/cat", "/proc/self/mountinfo"], 30)
        mounts = parse_mountinfo(res.out) if res.ok else []
        if not mounts:
            res = agent.docker_cmd(["exec", name, "/bin/cat", "/proc/mounts"], 30)
            mounts = parse_proc_mounts(res.out) if res.ok else []
        rm = root_mount(mounts)
        if rm:
            metrics["container_root_fstype"] = rm["fstype"]
            metrics["container_root_source"] = rm["source"]
            metrics["container_root_is_block_device"] = rm["source"].startswith("/dev/")
        # find the file from the host: docker inspect first, then a bounded walk
        insp = inspect_container(agent, name)
        metrics["graph_driver"] = (insp.get("GraphDriver") or {}).get("Name") or \
            insp.get("Driver") or None
        ids = [insp.get("Id") or cid]
        host_path = None
        for cand in storage_candidates(insp, root, metrics["storage_driver"]):
            p = cand.rstrip("/") + cfile
            if os.path.isfile(p):
                host_path, metrics["found_by"] = p, "inspect"
                break
        if host_path is None and root and os.path.isdir(root):
            matches, timed_out = bounded_find(
                root, cfile.lstrip("/"), agent.deadline.remaining(FIND_TIME_LIMIT))
            metrics["find_timed_out"] = timed_out
            if matches:
                host_path, metrics["found_by"] = matches[0], "find"
        metrics["host_path"] = host_path
        if host_path:
            metrics["host_path_under_docker_root"] = _under(host_path, root)
            hmounts = parse_mountinfo(read_text("/proc/self/mountinfo"))
            hm = find_mount(hmounts, os.path.realpath(host_path))
            metrics["host_path_fstype"] = hm["fstype"] if hm else None
            try:
                metrics["host_path_on_docker_root_fs"] = (
                    os.stat(host_path).st_dev == os.stat(root).st_dev)
            except (OSError, TypeError):
                pass
            content = read_text(host_path)
            metrics["host_can_read"] = content is not None and content.strip() == token
            new_token = "host-" + random_token()
            try:
                f = open(host_path, "w")
                try:
                    f.write(new_token + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                finally:
                    f.close()
                metrics["host_can_write"] = True
            except (IOError, OSError):
                metrics["host_can_write"] = False
            if metrics["host_can_write"]:
                res = agent.docker_cmd(["exec", name, "/bin/cat", cfile], 30)
                metrics["container_sees_host_write"] = res.ok and res.out.strip() == new_token
            metrics["container_id"] = (insp.get("Id") or cid)[:12]
        return storage_verdict(metrics, ids)
    finally:
        agent.remove_container(name)


EXPERIMENTS = {"storage-location": experiment_storage_location}
EXPERIMENT_ORDER = ("storage-location",)


def run_experiment(agent, name, records=None):
    """Run one experiment; its record is appended to ``records`` before it starts, so an
    interrupted experiment still shows (status "error", kind "interrupted")."""
    record = {"name": name, "status": "error", "started": iso_utc(), "finished": None,
              "duration_s": None, "metrics": {}, "verdict": None, "error": None}
    if records is not None:
        records.append(record)
    start = time.time()
    agent.progress("experiment-start", name, "starting %s" % name)
    try:
        try:
            verdict = EXPERIMENTS[name](agent, record["metrics"])
            record["status"] = "ok"
            record["verdict"] = verdict
        except ExperimentError as exc:
            record["error"] = {"kind": exc.kind, "message": one_line(exc.msg, 500)}
            record["verdict"] = "error: %s" % one_line(exc.msg, 200)
        except AgentInterrupted as exc:
            record["error"] = {"kind": "interrupted", "message": "stopped by signal %d"
                               % exc.signum}
            record["verdict"] = "error: interrupted by signal %d" % exc.signum
            raise
        except Exception as exc:
            record["error"] = {"kind": "agent-crash", "message": one_line(
                "%s: %s (at %s)" % (type(exc).__name__, exc, _where(sys.exc_info())), 500)}
            record["verdict"] = "error: the agent crashed in this experiment"
    finally:
        end = time.time()
        record["finished"] = iso_utc(end)
        record["duration_s"] = round(end - start, 3)
        agent.progress("experiment-end", name, record["verdict"] or record["status"])
    return record


def _where(exc_info):
    tb = traceback.extract_tb(exc_info[2])
    if not tb:
        return "?"
    frame = tb[-1]
    return "%s:%s" % (os.path.basename(frame[0]), frame[1])


def skipped_experiment(name, error):
    return {"name": name, "status": "skipped", "started": None, "finished": None,
            "duration_s": None, "metrics": {},
            "verdict": "skipped: %s" % (error or {}).get("message", "not run"),
            "error": error}


# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------

def new_result(run_id, host):
    return {"schema": SCHEMA_VERSION, "agent_version": AGENT_VERSION, "run_id": run_id,
            "host": host, "started": iso_utc(), "finished": None,
            "python": platform.python_version(), "status": "error", "error": None,
            "facts": None, "experiments": []}


def execute_run(run_id, host, out, experiments, workdir, timeout):
    """The body of `run`; returns the process exit code."""
    progress_path = out + ".progress"
    out_dir = os.path.dirname(out)
    if out_dir and not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    for stale in (out, out + ".tmp", progress_path):
        try:
            os.remove(stale)
        except OSError:
            pass
    result = new_result(run_id, host)
    docker = Docker()
    agent = Agent(run_id, host, workdir, timeout, progress_path, docker)
    exit_code = 0
    try:
        try:
            install_signal_handlers()
            agent.progress("start", None, "agent %s (python %s, pid %d) on %s"
                           % (AGENT_VERSION, result["python"], os.getpid(), host))
            if not os.path.isdir(agent.run_dir):
                os.makedirs(agent.run_dir)
            write_pid_file(agent.run_dir)
            facts = gather_facts(docker)
            result["facts"] = facts
            agent.facts = facts
            dfacts = facts.get("docker") or {}
            usable = bool(docker.server_version)
            try:
                reaped = reap(workdir, usable and docker or None, own_run_id=run_id)
                result["reaped"] = {"containers": reaped["containers"],
                                    "workdirs": reaped["workdirs"], "errors": reaped["errors"]}
            except Exception as exc:
                result["reaped"] = {"containers": [], "workdirs": [],
                                    "errors": ["reaper failed: %s" % one_line(str(exc))]}
            if not usable:
                result["error"] = {"kind": dfacts.get("error_kind") or "docker-error",
                                   "message": dfacts.get("error") or "docker is not usable"}
                result["experiments"] = [skipped_experiment(n, result["error"])
                                         for n in experiments]
            else:
                for name in experiments:
                    run_experiment(agent, name, result["experiments"])
                result["status"] = "ok"
        except AgentInterrupted as exc:
            result["status"] = "error"
            result["error"] = {"kind": "interrupted", "message": "the agent was stopped by "
                               "signal %d before it finished; re-run the probe" % exc.signum}
            exit_code = 128 + exc.signum
        except Exception as exc:
            result["status"] = "error"
            result["error"] = {"kind": "agent-crash", "message": one_line(
                "the agent crashed: %s: %s (at %s); please report this with the host's "
                "facts" % (type(exc).__name__, exc, _where(sys.exc_info())), 500)}
        done = set(e["name"] for e in result["experiments"])
        for name in experiments:
            if name not in done:
                result["experiments"].append(skipped_experiment(name, result["error"]))
    finally:
        _SIGNALS["defer"] = True
        try:
            agent.cleanup()
        except Exception:
            pass
        if _SIGNALS["received"] is not None and result["error"] is None:
            result["status"] = "error"
            result["error"] = {"kind": "interrupted", "message": "the agent was stopped by "
                               "signal %d; re-run the probe" % _SIGNALS["received"]}
            exit_code = 128 + _SIGNALS["received"]
        result["finished"] = iso_utc()
        try:
            write_json_atomic(out, result)
        except (IOError, OSError) as exc:
            sys.stderr.write("labctl probe agent: cannot write the result to %s: %s\n"
                             % (out, exc))
            exit_code = 1
        agent.progress("end", None, "status %s" % result["status"])
    return exit_code


USAGE = """usage: probe_agent.py COMMAND [options]

commands:
  run --run-id ID --host NAME --out PATH [--experiments storage-location]
      [--workdir DIR] [--timeout SECONDS]
                 gather facts, run the experiments, write the result JSON to PATH
  facts          print the host's facts as JSON
  reap [--workdir DIR]
                 remove leftovers (labctl-probe-* containers, run folders) of dead runs
  --version      print the agent version

example:
  python probe_agent.py run --run-id r1 --host centos66 --out /var/tmp/labctl/r1.json
"""


def _parser(prog, usage):
    return optparse.OptionParser(prog=prog, usage=usage, add_help_option=True)


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    if not argv:
        sys.stderr.write(USAGE)
        return 2
    if argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    if argv[0] in ("--version", "-V", "version"):
        print(AGENT_VERSION)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "run":
        p = _parser("probe_agent.py run", "%prog --run-id ID --host NAME --out PATH [options]")
        p.add_option("--run-id", dest="run_id")
        p.add_option("--host", dest="host")
        p.add_option("--out", dest="out")
        p.add_option("--experiments", dest="experiments", default=",".join(DEFAULT_EXPERIMENTS),
                     help="comma separated: %s" % ", ".join(EXPERIMENT_ORDER))
        p.add_option("--workdir", dest="workdir", default=DEFAULT_WORKDIR)
        p.add_option("--timeout", dest="timeout", type="float", default=DEFAULT_TIMEOUT)
        opts, args = p.parse_args(rest)
        if args:
            p.error("unexpected arguments: %s" % " ".join(args))
        for name in ("run_id", "host", "out"):
            if not getattr(opts, name):
                p.error("--%s is required" % name.replace("_", "-"))
        if not RUN_ID_RE.match(opts.run_id):
            p.error("--run-id must be 1-64 of A-Z a-z 0-9 _ . - (starting with a letter or "
                    "digit), got %r" % opts.run_id)
        if opts.timeout <= 0:
            p.error("--timeout must be positive")
        exps = [e.strip() for e in opts.experiments.split(",") if e.strip()]
        unknown = [e for e in exps if e not in EXPERIMENTS]
        if unknown or not exps:
            p.error("unknown experiment(s) %s; known: %s"
                    % (", ".join(unknown) or "(none given)", ", ".join(EXPERIMENT_ORDER)))
        return execute_run(opts.run_id, opts.host, os.path.abspath(opts.out), exps,
                           os.path.abspath(opts.workdir), opts.timeout)
    if command == "facts":
        p = _parser("probe_agent.py facts", "%prog")
        opts, args = p.parse_args(rest)
        if args:
            p.error("unexpected arguments: %s" % " ".join(args))
        facts = gather_facts(Docker())
        print(json.dumps(facts, indent=2, sort_keys=True, separators=(",", ": ")))
        return 0
    if command == "reap":
        p = _parser("probe_agent.py reap", "%prog [--workdir DIR]")
        p.add_option("--workdir", dest="workdir", default=DEFAULT_WORKDIR)
        opts, args = p.parse_args(rest)
        if args:
            p.error("unexpected arguments: %s" % " ".join(args))
        removed = reap(os.path.abspath(opts.workdir), Docker())
        print(json.dumps(removed, indent=2, sort_keys=True, separators=(",", ": ")))
        return 0
    sys.stderr.write("probe_agent.py: unknown command %r\n\n%s" % (command, USAGE))
    return 2


if __name__ == "__main__":
    sys.exit(main())
