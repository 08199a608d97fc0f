# -*- coding: utf-8 -*-
"""labctl probe agent: one stdlib-only file pushed to a lab host and run there.

It gathers facts about the host (distribution, kernel, cgroups, Docker, limits)
and runs the study's experiments against the host's own Docker engine through
the ``docker`` command line client found on PATH.  It runs on Python 2.6
through 3.13 and talks to Docker 1.5 through today.

Commands::

    python probe_agent.py run --run-id ID --host NAME --out PATH
        [--experiments storage-location|all|disk,disk-limited,disk-shared,inodes,
         memory,memory-limited,processes,processes-limited] [--workdir /var/tmp/labctl]
        [--timeout 300] [--mode bounded|exhaust] [--limit NAME=VALUE ...]

The resource experiments (the study's Table 2) are bounded by default: each stops at a cap
and before a safety floor on the host (DEFAULT_LIMITS); ``--mode exhaust`` runs them to
real exhaustion with the agent protecting itself.
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
# every tool any experiment needs: ONE probe image per run (and per host userland), imported
# at the start of the run while the disk is as the run found it
PROBE_TOOLS_ALL = DEFAULT_PROBE_TOOLS + ("tail",)
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


def write_json_atomic(path, obj, reserve=None):
    """Write JSON to ``path`` atomically: path.tmp, flush, fsync, rename.

    ``reserve``: a file of real (not sparse) bytes written before the run; it becomes the
    .tmp file and is overwritten in place, so a full disk cannot stop the result."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        os.makedirs(parent)
    tmp = path + ".tmp"
    data = json.dumps(obj, indent=2, sort_keys=True, separators=(",", ": "))
    f = None
    if reserve and os.path.isfile(reserve):
        try:
            os.rename(reserve, tmp)
            f = open(tmp, "r+b")
        except (IOError, OSError):
            f = None
    if f is None:
        f = open(tmp, "wb")
    try:
        f.write(data.encode("utf-8"))
        f.write(b"\n")
        f.truncate()
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


DAEMON_PID_FILES = ("/var/run/docker.pid", "/run/docker.pid")


_CLIENT_COMMANDS = frozenset(
    "attach build commit cp create diff events exec export history images import info inspect "
    "kill load login logout logs pause port ps pull push rename restart rm rmi run save search "
    "start stats stop tag top unpause version wait".split())


def is_daemon_cmdline(args):
    """dockerd, or the single binary of 1.x run as a daemon (`docker -d`, `docker daemon`):
    -d counts only before a client command (`docker run -d` is not a daemon)."""
    if not args or not args[0]:
        return False
    name = os.path.basename(args[0])
    if name == "dockerd":
        return True
    if name != "docker":
        return False
    for arg in args[1:]:
        if arg in ("-d", "--daemon", "--daemon=true", "daemon"):
            return True
        if arg in _CLIENT_COMMANDS:
            return False
    return False


def find_daemon_pid():
    """The engine daemon's pid: its pid file, else the first daemon found in /proc."""
    for path in DAEMON_PID_FILES:
        pid = to_int(read_text(path))
        if pid and is_daemon_cmdline((read_text("/proc/%d/cmdline" % pid) or "").split("\0")):
            return pid
    try:
        entries = sorted(int(e) for e in os.listdir("/proc") if e.isdigit())
    except OSError:
        return None
    for pid in entries:
        if is_daemon_cmdline((read_text("/proc/%d/cmdline" % pid) or "").split("\0")):
            return pid
    return None


def mount_ns(pid):
    """The mount namespace of a process ('mnt:[4026531840]'), or None."""
    try:
        return os.readlink("/proc/%s/ns/mnt" % pid)
    except (OSError, AttributeError):
        return None


def daemon_mount_namespace(pid):
    """'host' when the daemon shares init's mount namespace, 'private' when it has its own
    (a unit with MountFlags=slave: the article's CentOS 7.0), None when it cannot be told."""
    if not pid:
        return None
    init_ns, daemon_ns = mount_ns(1), mount_ns(pid)
    if not init_ns or not daemon_ns:
        return None
    return "host" if init_ns == daemon_ns else "private"


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
        "error": None, "error_kind": None, "swap_limit_warning": None,
        "daemon_pid": None, "mount_namespace": None,
    }
    facts["daemon_pid"] = find_daemon_pid()
    facts["mount_namespace"] = daemon_mount_namespace(facts["daemon_pid"])
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
    if info["storage_driver"] or info["warnings"]:
        # "WARNING: No swap limit support": --memory-swap is ignored (Ubuntu 14.04's kernel)
        facts["swap_limit_warning"] = swap_limit_warning(info["warnings"])
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
    info["probe_images_removed"] = remove_other_probe_images(docker, image)
    return info


def remove_other_probe_images(docker, keep):
    """Drop probe images of earlier tool sets, so they do not pile up on the host.

    Only when no other agent runs on this host (it may be about to start a container from
    one); an image a container still uses is refused by the engine and kept anyway.
    """
    if len(live_agent_run_ids()) > 1:
        return 0
    res = docker.run(["images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPO], 30)
    if not res.ok:  # Docker < 1.8 has no --format here: leave them, they are small
        return 0
    removed = 0
    for name in res.out.split():
        if name.startswith(IMAGE_REPO + ":") and name != keep:
            if docker.run(["rmi", name], 30).ok:
                removed += 1
    return removed


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


#: the controller's folder on a host: one <run-id>/ per run (agent copy, log, result)
CONTROLLER_RUNS = "/var/tmp/labctl-runs"
#: a controller run folder without a pid file that changed this recently may be a run being
#: started (between its mkdir, upload and launch); an upload in progress is also seen by the
#: file it holds open, so the grace can be short
STARTING_GRACE_S = 10
#: a dead run's result that no controller fetched is kept this long for `labctl collect`
UNCOLLECTED_KEEP_S = 7 * 24 * 3600
_UNCOLLECTED_KEEP = ("result.json", "agent.log")


def _newest_mtime(path):
    newest = 0
    for p in [path] + [os.path.join(path, n) for n in _listdir(path)]:
        try:
            newest = max(newest, os.lstat(p).st_mtime)
        except OSError:
            pass
    return newest


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _open_under(parent):
    """Run folders under ``parent`` in which some process holds a file open (an upload)."""
    held = set()
    prefix = parent.rstrip("/") + "/"
    for pid in _listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = "/proc/%s/fd" % pid
        for fd in _listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith(prefix):
                held.add(target[len(prefix):].split("/", 1)[0])
    return held


def reap_controller_runs(parent, live, removed, now=None):
    """The controller's run folders of dead runs in ``parent`` (/var/tmp/labctl-runs): gone,
    except an uncollected result (kept with its log for `labctl collect`, for a week).
    A folder is live when an agent of its run lives (pid + start time in its agent.pid, or
    seen in /proc), or when it has no agent.pid yet and either holds a file some process has
    open (an upload in progress) or changed in the last seconds without a cut upload in it."""
    now = now or time.time()
    held = None
    for name in _listdir(parent):
        path = os.path.join(parent, name)
        if not RUN_ID_RE.match(name) or os.path.islink(path) or not os.path.isdir(path):
            continue
        pid, start = read_pid_file(path)
        if name in live or (pid is not None and pid_alive(pid, start)):
            live.add(name)
            continue
        age = now - _newest_mtime(path)
        if pid is None:
            if held is None:
                held = _open_under(parent)
            if name in held:
                continue  # an upload in progress
            cut = [e for e in _listdir(path) if e.endswith(".part")]
            if age < STARTING_GRACE_S and not cut:
                continue  # between mkdir and upload, or upload and launch

        if os.path.isfile(os.path.join(path, "result.json")) and age < UNCOLLECTED_KEEP_S:
            for entry in _listdir(path):
                if entry in _UNCOLLECTED_KEEP:
                    continue
                p = os.path.join(path, entry)
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p, True)
                else:
                    try:
                        os.remove(p)
                    except OSError:
                        pass
                if not os.path.lexists(p):
                    removed["workdirs"].append(p)
            continue
        shutil.rmtree(path, True)
        if not os.path.exists(path):
            removed["workdirs"].append(path)
        else:
            removed["errors"].append("could not remove %s" % path)


def reap(workdir, docker, own_run_id=None, fs_parents=(), controller_runs=None):
    """Remove leftovers of dead runs: their labctl-probe-<run>-* containers, run dirs, and
    labctl-probe-<run>-fs folders (shared folders) in ``fs_parents`` (the docker root and
    its parent), and the controller's folders of dead runs in ``controller_runs``."""
    removed = {"containers": [], "workdirs": [], "kept_live_runs": [], "errors": []}
    live = live_agent_run_ids()
    if own_run_id:
        live.add(own_run_id)
    if controller_runs:
        reap_controller_runs(controller_runs, live, removed)
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
    for parent in fs_parents or ():
        try:
            entries = sorted(os.listdir(parent))
        except (OSError, TypeError):
            continue
        for entry in entries:
            if not (entry.startswith(NAME_PREFIX) and entry.endswith("-fs")):
                continue
            rid = entry[len(NAME_PREFIX):-len("-fs")]
            if rid in live:
                continue
            dead_dirs.append(os.path.join(parent, entry))
    for path in dead_dirs:
        shutil.rmtree(path, True)
        if not os.path.exists(path):
            removed["workdirs"].append(path)
    return removed


def controller_runs_of(out):
    """/var/tmp/labctl-runs when the result goes to <it>/<run-id>/result.json (the
    controller's layout), else None: a hand-run agent reaps no folder it did not make."""
    parent = os.path.dirname(os.path.dirname(os.path.abspath(out)))
    if os.path.basename(parent) == os.path.basename(CONTROLLER_RUNS):
        return parent
    return None


def fs_parents_of(root_dir):
    """Where labctl-probe-<run>-fs folders may be: the docker root and its parent."""
    if not root_dir:
        return ()
    return (os.path.dirname(root_dir.rstrip("/")), root_dir)


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
    def __init__(self, run_id, host, workdir, timeout, progress_path=None, docker=None,
                 mode="bounded", limit_overrides=None):
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
            if not os.path.isdir(self.run_dir):
                os.makedirs(self.run_dir)
            self.image = ensure_probe_image(self.docker, self.run_dir, PROBE_TOOLS_ALL,
                                            timeout=self.deadline.remaining(cap))
        info = dict(self.image)
        if self.image_reported:
            info["probe_image_built"] = False
            info["probe_image_bytes"] = None
        self.image_reported = True
        return info

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
            # Docker 1.5.0's static binary has no udev sync: on devicemapper a start can fail
            # with "Error mounting '/dev/mapper/...'" while udev still makes the node (seen on
            # the 1st and the 6th container of a run); the same start a moment later works
            if res.ok or "error mounting '/dev/mapper/" not in (res.err + res.out).lower():
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
                "namespace (a unit with MountFlags=slave), not in the host's file tree; %s "
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
        f = open(path, "w")
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
        "daemon_pid": dfacts.get("daemon_pid"), "daemon_mount_ns": dfacts.get("mount_namespace"),
        "in_host_tree": None, "container_root_mounted_in_host_ns": None,
        "container_root_mounted_in_daemon_ns": None, "daemon_ns_path": None,
        "host_can_read_via_daemon_ns": None, "host_can_write_via_daemon_ns": None,
        "container_sees_daemon_ns_write": None,
    })
    if not os.path.isdir(agent.run_dir):
        os.makedirs(agent.run_dir)
    metrics.update(agent.probe_image())
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
        metrics["in_host_tree"] = host_path is not None
        if rm and metrics["container_root_is_block_device"]:
            # is the container's device mounted where the host (init) sees it, or only in the
            # daemon's own mount namespace (MountFlags=slave: the article's CentOS 7.0)?
            metrics["container_root_mounted_in_host_ns"] = _device_mounted(
                "/proc/1/mountinfo", rm["source"])
            if metrics["daemon_pid"]:
                metrics["container_root_mounted_in_daemon_ns"] = _device_mounted(
                    "/proc/%d/mountinfo" % metrics["daemon_pid"], rm["source"])
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
            (metrics["host_can_read"], metrics["host_can_write"],
             metrics["container_sees_host_write"]) = _read_and_change(agent, name, host_path,
                                                                     cfile, token)
            metrics["container_id"] = (insp.get("Id") or cid)[:12]
        elif metrics["daemon_mount_ns"] == "private" and metrics["daemon_pid"]:
            # not in the host's tree: the host reaches it only through the daemon's namespace
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
            metrics["container_id"] = (insp.get("Id") or cid)[:12]
        return storage_verdict(metrics, ids)
    finally:
        agent.remove_container(name)


# ---------------------------------------------------------------------------
# the study's resource checks: limits (bounded by default)
# ---------------------------------------------------------------------------

KIB = 1024
MIB = 1024 ** 2
GIB = 1024 ** 3

MODES = ("bounded", "exhaust")
RESOURCE_EXPERIMENTS = ("disk", "disk-limited", "disk-shared", "inodes", "memory",
                        "memory-limited", "processes", "processes-limited")
RESOURCE_OF = {"disk": "disk", "disk-limited": "disk", "disk-shared": "disk", "inodes": "inodes",
               "memory": "memory",
               "memory-limited": "memory", "processes": "processes",
               "processes-limited": "processes"}
STOP_REASONS = ("cap", "floor", "enospc", "eagain", "oom-kill", "container-limit", "timeout",
                "stall", "error", "not-available")

# Bounded mode (the default).  A cap is the most a container is asked to use; a floor is what
# must stay free on the host: the agent samples the host several times a second and kills the
# container before the floor is crossed (it also gives the container no more than free - floor).
# Defaults that are not set with --limit scale with the host:
#   cap   = min(<resource>_cap,   <resource>_cap_fraction   * free at the start)
#   floor = min(max(<resource>_floor, <resource>_floor_fraction * total), total / 2)
# so a 512 MiB lab disk gets a 256 MiB floor and a cap of a quarter of what is free, and a
# 250 GB disk a 25 GB floor and a 1 GiB cap.  "free pids" is the smallest of pid_max,
# threads-max and a pids cgroup limit visible at the root of the hierarchy, minus the
# threads in use; "memory" is MemAvailable (and the visible memory cgroup's room).
# Exhaust mode (--mode exhaust) drops the caps and sets the floors to 0 unless a --limit sets
# them: the agent then protects itself instead (oom_score_adj -1000, the result file's space
# reserved before the run, the container stopped through the engine's socket, no fork).
DEFAULT_LIMITS = {
    "disk_cap_bytes": 1 * GIB,
    "disk_cap_fraction": 0.25,
    "disk_floor_bytes": 256 * MIB,
    "disk_floor_fraction": 0.10,
    "inodes_cap": 100000,
    "inodes_cap_fraction": 0.25,
    "inodes_floor": 10000,
    "inodes_floor_fraction": 0.10,
    "memory_cap_bytes": 1 * GIB,
    "memory_cap_fraction": 0.25,
    "memory_floor_bytes": 512 * MIB,
    "memory_floor_fraction": 0.10,
    "memory_limit_bytes": 64 * MIB,       # -m (and --memory-swap) of memory-limited
    "disk_limit_bytes": 64 * MIB,         # --storage-opt size= of disk-limited
    "processes_cap": 1000,
    "processes_cap_fraction": 0.25,
    "processes_floor": 2000,              # free pids
    "processes_floor_fraction": 0.10,
    "pids_limit": 64,                     # --pids-limit of processes-limited
    "experiment_timeout_s": 120.0,        # each experiment, in both modes
    "sample_interval_s": 0.1,             # host sampling period
    "stall_s": 3.0,                       # least no-progress window (see stall_window)
    "host_write_bytes": 1 * MIB,          # the host's own check at the peak
    "host_alloc_bytes": 16 * MIB,
    "result_reserve_bytes": 4 * MIB,      # space kept for the result file
    "max_series_points": 600,
    "recovery_wait_s": 60.0,              # after each experiment: the host's disk/pids back
}

_CAP_KEYS = {"disk": "disk_cap_bytes", "inodes": "inodes_cap", "memory": "memory_cap_bytes",
             "processes": "processes_cap"}
_FLOOR_KEYS = {"disk": "disk_floor_bytes", "inodes": "inodes_floor",
               "memory": "memory_floor_bytes", "processes": "processes_floor"}
_LIMIT_OFF = ("off", "none", "no", "unlimited")
_BIN_UNITS = {"": 1, "b": 1, "k": KIB, "kb": KIB, "kib": KIB, "m": MIB, "mb": MIB, "mib": MIB,
              "g": GIB, "gb": GIB, "gib": GIB, "t": 1024 ** 4, "tb": 1024 ** 4,
              "tib": 1024 ** 4}
_COUNT_UNITS = {"": 1, "k": 1000, "m": 1000 ** 2}


def parse_limit_value(name, text):
    """The value of one --limit: sizes for *_bytes ('512M', '1G', '1.5GiB': binary units, as
    docker's -m), plain or k/m-suffixed counts ('100k'), seconds for *_s ('90', '90s'),
    fractions for *_fraction; 'off'/'none' turn a cap or floor off (None).  ValueError if bad.
    """
    if name not in DEFAULT_LIMITS:
        raise ValueError("unknown limit %r; known: %s" % (name, ", ".join(sorted(DEFAULT_LIMITS))))
    raw = (text or "").strip().lower()
    if raw in _LIMIT_OFF:
        if name.endswith("_cap") or name.endswith("_cap_bytes") or \
                name.endswith("_floor") or name.endswith("_floor_bytes"):
            return None
        raise ValueError("%s cannot be turned off" % name)
    if name.endswith("_s"):
        m = re.match(r"^([0-9]+(?:\.[0-9]+)?)\s*s?$", raw)
        if not m or float(m.group(1)) <= 0:
            raise ValueError("%s needs a positive number of seconds, got %r" % (name, text))
        return float(m.group(1))
    if name.endswith("_fraction"):
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0.0 <= value <= 1.0:
            raise ValueError("%s needs a fraction between 0 and 1, got %r" % (name, text))
        return value
    units = _BIN_UNITS if name.endswith("_bytes") else _COUNT_UNITS
    m = re.match(r"^([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)$", raw)
    if not m or m.group(2) not in units:
        what = "a size like 512M or 1G" if units is _BIN_UNITS else "a count like 2000 or 100k"
        raise ValueError("%s needs %s, got %r" % (name, what, text))
    return int(round(float(m.group(1)) * units[m.group(2)]))


def parse_limit_options(items):
    """['disk_cap_bytes=32M', ...] -> {name: value}; ValueError naming the bad item."""
    result = {}
    for item in items or []:
        name, sep, value = (item or "").partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise ValueError("--limit needs NAME=VALUE, got %r" % item)
        result[name] = parse_limit_value(name, value)
    return result


def limit_value(overrides, name):
    if overrides and name in overrides:
        return overrides[name]
    return DEFAULT_LIMITS[name]


def cap_and_floor(resource, mode, overrides, free, total):
    """(cap, floor) for one resource; cap None means no cap, floor 0 means no floor."""
    overrides = overrides or {}
    cap_key, floor_key = _CAP_KEYS[resource], _FLOOR_KEYS[resource]
    if cap_key in overrides:
        cap = overrides[cap_key]
    elif mode == "exhaust":
        cap = None
    else:
        cap = DEFAULT_LIMITS[cap_key]
        frac = limit_value(overrides, resource + "_cap_fraction")
        if free is not None and frac:
            cap = min(cap, int(free * frac))
    if floor_key in overrides:
        floor = overrides[floor_key] or 0
    elif mode == "exhaust":
        floor = 0
    else:
        floor = DEFAULT_LIMITS[floor_key]
        frac = limit_value(overrides, resource + "_floor_fraction")
        if total:
            floor = min(max(floor, int(total * frac)), int(total // 2))
    return cap, floor


def cap_within_floor(cap, floor, free):
    """The amount the container is given: the cap, but never more than free - floor.

    Returns (amount or None for unbounded, limited_by_floor).
    """
    if not floor or free is None:
        return cap, False
    room = max(0, int(free) - int(floor))
    if cap is None or cap > room:
        return room, True
    return cap, False


def floor_breached(value, floor, rate, horizon):
    """True when the free amount ``value`` is at the floor, or will be within ``horizon``
    seconds at the current rate of decline ``rate`` (units per second)."""
    if value is None or not floor:
        return False
    return value - max(rate or 0.0, 0.0) * horizon <= floor


def decline_rate(prev, cur):
    """Units per second by which a free amount fell between two samples (t, value)."""
    if not prev or not cur or prev[1] is None or cur[1] is None:
        return 0.0
    dt = cur[0] - prev[0]
    if dt <= 0:
        return 0.0
    return max(0.0, (prev[1] - cur[1]) / dt)


def downsample(series, max_points=600):
    """Keep at most ``max_points`` evenly spread points (the first and last always)."""
    t = series.get("t") or []
    n = len(t)
    if n <= max_points or max_points < 2:
        return series
    idx = []
    for i in range(max_points):
        j = int(round(i * (n - 1) / float(max_points - 1)))
        if not idx or idx[-1] != j:
            idx.append(j)
    out = {}
    for key, values in series.items():
        out[key] = [values[j] for j in idx]
    return out


def pids_gate(server_version, cgroup_controllers):
    """(supported, reason) for --pids-limit: Docker 1.11+ and a kernel with the pids cgroup."""
    vt = version_tuple(server_version)
    if vt is None or vt < (1, 11):
        return False, "not supported by Docker %s (--pids-limit needs Docker 1.11 or later)" % (
            server_version or "(unknown version)")
    if cgroup_controllers is not None and "pids" not in cgroup_controllers:
        return False, ("not supported by this kernel (no pids cgroup; it needs Linux 4.3 or "
                       "later)")
    return True, None


def resource_run_options(kind, server_version, limits, selinux_enforcing=False,
                         shared_dir=None, storage_opt_size=None):
    """Extra `docker run` options of one experiment, gated by the server's version.

    Returns (args, applied) where applied says which limits were asked for.
    ``storage_opt_size``: disk-limited's `--storage-opt size=` (only where the engine
    accepted it when tried).
    """
    vt = version_tuple(server_version) or (0, 0, 0)
    args = []
    if storage_opt_size:
        args += ["--storage-opt", "size=%d" % int(storage_opt_size)]
    applied = {"memory_limit_bytes": None, "memory_swap_limit_bytes": None, "pids_limit": None}
    if kind == "memory-limited":
        mem = int(limits["memory_limit_bytes"])
        args += ["-m", "%db" % mem]
        applied["memory_limit_bytes"] = mem
        if vt >= (1, 5):  # --memory-swap came with Docker 1.5 (API 1.17)
            args += ["--memory-swap", "%db" % mem]
            applied["memory_swap_limit_bytes"] = mem
    if kind == "processes-limited" and vt >= (1, 11):
        args += ["--pids-limit", str(int(limits["pids_limit"]))]
        applied["pids_limit"] = int(limits["pids_limit"])
    if shared_dir:
        suffix = ":z" if (selinux_enforcing and vt >= (1, 7)) else ""
        args += ["-v", "%s:/shared%s" % (shared_dir, suffix)]
    return args, applied


# -- per-container disk limits (disk-limited; devicemapper's base size) and swap accounting ------

DISK_LIMIT_CAP_FACTOR = 2     # disk-limited writes up to twice its limit: past it if it fails
STORAGE_OPT_MIN_VERSION = (1, 12)  # `docker run/create --storage-opt` came with Docker 1.12
HOST_ROOM_MIN_BYTES = 32 * MIB     # less free than this on the host is no "room"

# the engine's (or an old client's) words when it refuses a per-container size, lower case;
# -> kind: "client" (no such flag), "driver" (the storage driver has no size option),
# "quota" (its filesystem has no quota), "below-base" (devicemapper: not below the base size)
_STORAGE_OPT_REFUSALS = (
    ("flag provided but not defined", "client"),
    ("unknown flag: --storage-opt", "client"),
    ("unknown flag: storage-opt", "client"),
    ("cannot be smaller than", "below-base"),
    ("storage size cannot be less than", "below-base"),
    ("storage-opt is supported only for", "driver"),
    ("storage-opt is not supported", "driver"),
    ("does not support, or has not enabled quotas", "quota"),
    ("quota", "quota"),
    ("storage opt", "driver"),
    ("storage-opt", "driver"),
    ("storageopt", "driver"),
    ("unknown option size", "driver"),
    ("not supported", "driver"),
)


def engine_message(text):
    """The engine's own words from docker CLI stderr, on one line: 'docker: Error response
    from daemon: X.' and "See 'docker run --help'." stripped."""
    lines = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("See '") or line.startswith("WARNING"):
            continue
        if line.lower().startswith("usage:"):
            break
        lines.append(line)
    msg = " ".join(lines)
    msg = re.sub(r"^(docker: )?(Error response from daemon: )?", "", msg)
    msg = re.sub(r"^(Error: )", "", msg)
    msg = re.sub(r"^(failed to create .*?: )", "", msg)
    return one_line(msg.rstrip(". "), 300)


def storage_opt_refusal(text):
    """The kind of refusal ('client', 'driver', 'quota', 'below-base') when a `docker
    create --storage-opt size=` failed because of that option; None for any other error."""
    low = (text or "").lower()
    for needle, kind in _STORAGE_OPT_REFUSALS:
        if needle in low:
            if needle == "not supported" and "size" not in low and "storage" not in low:
                continue
            return kind
    return None


def base_device_size(driver, driver_status):
    """devicemapper's base device size (every container's / is a thin device this big) in
    bytes, from `docker info` ('Base Device Size: 10.74 GB'); None for other drivers."""
    if (driver or "").lower() != "devicemapper":
        return None
    for key, value in (driver_status or {}).items():
        if key.strip().lower() == "base device size":
            return parse_size(value)
    return None


_FS_NAMES = {"extfs": "ext4", "ext2/ext3": "ext4"}


def storage_opt_skip_verdict(driver, fstype, kind, message, server_version=None):
    """Why disk-limited cannot run here, in plain words, quoting the engine."""
    if kind == "client" or kind == "old-docker":
        said = (" (docker says: %s)" % message) if message else ""
        return ("not supported here: Docker %s has no per-container disk size limit "
                "(`docker run --storage-opt size=` came with Docker 1.12)%s"
                % (server_version or "(unknown version)", said))
    fs = _FS_NAMES.get((fstype or "").lower(), fstype or "its filesystem")
    return ("not supported here: %s on %s has no per-container size limit (the engine says: %s)"
            % (driver or "this storage driver", fs, message or "no reason given"))


def disk_limit_plan(name, driver, server_version, requested, base_size, opt_probe=None,
                    fstype=None):
    """How the disk check runs with respect to a per-container disk limit (pure).

    ``opt_probe``: what trying `docker create --storage-opt size=<requested>` gave: None (not
    tried), ("ok", "") or ("failed", docker's stderr).  Returns a dict: storage_opt (bool:
    pass the flag), limit (bytes in effect or None), source ('storage-opt',
    'base-device-size' or None), try_opt (bool: the caller should try the flag first), skip
    (the record's verdict when it cannot run here, or None), refusal (kind or None), message
    (the engine's words or None), error (the create failed for another reason: an error)."""
    plan = {"storage_opt": False, "limit": None, "source": None, "try_opt": False,
            "skip": None, "refusal": None, "message": None, "error": None}
    if base_size:  # devicemapper: every container's / is a thin device of this size
        plan["limit"], plan["source"] = base_size, "base-device-size"
    if name != "disk-limited":
        return plan
    vt = version_tuple(server_version)
    if vt is not None and vt < STORAGE_OPT_MIN_VERSION:
        plan["refusal"] = "old-docker"
        if not base_size:
            plan["skip"] = storage_opt_skip_verdict(driver, None, "old-docker", None,
                                                    server_version)
        return plan
    if opt_probe is None:
        plan["try_opt"] = True
        return plan
    status, text = opt_probe
    if status == "ok":
        plan.update({"storage_opt": True, "limit": int(requested), "source": "storage-opt"})
        return plan
    plan["message"] = engine_message(text) or one_line(text) or None
    plan["refusal"] = storage_opt_refusal(text)
    if plan["refusal"] is None:
        plan["error"] = plan["message"] or "docker create failed"
    elif not base_size:
        plan["skip"] = storage_opt_skip_verdict(driver, fstype, plan["refusal"],
                                                plan["message"], server_version)
    return plan


def disk_limited_cap(cap, limit):
    """The write cap of disk-limited: twice the limit in effect, still under the cap."""
    if not limit:
        return cap
    want = int(limit) * DISK_LIMIT_CAP_FACTOR
    return want if cap is None else min(int(cap), want)


def host_had_room(written, free_min, limit=None):
    """Did the host's filesystem clearly still have room when the container got ENOSPC?
    ``free_min``: the least free space seen (root's view).  Room means at least 32 MiB
    free, and either as much free as was written, or the container wrote up to (80% of)
    a known per-container limit."""
    if free_min is None or free_min < HOST_ROOM_MIN_BYTES:
        return False
    if limit and written is not None and written >= 0.8 * limit:
        return True
    return free_min >= (written or 0)


def swap_limit_warning(warnings):
    """True when `docker info` warns that swap cannot be limited ('No swap limit support',
    the study's Ubuntu 14.04), False when it does not (or None when nothing was read)."""
    if warnings is None:
        return None
    for w in warnings:
        low = (w or "").lower()
        if "no swap limit support" in low or "swap limit capabilities" in low:
            return True
    return False


def swap_limit_applied(requested, run_stderr, info_warning, cgroup_value, cgroup_version,
                       inspect_swap=None):
    """Was --memory-swap applied?  -> (True/False/None, source 'cgroup'|'engine'|
    'engine-warning'|'assumed').

    ``cgroup_value``: the container cgroup's swap limit as read (v1
    memory.memsw.limit_in_bytes in bytes, v2 memory.swap.max as text), '' when the file is
    missing, None when the cgroup could not be read.  ``inspect_swap``: HostConfig.MemorySwap
    of `docker inspect` (an engine without swap accounting stores -1)."""
    if not requested:
        return None, None
    if cgroup_value is not None:
        v = TEXT_TYPE(cgroup_value).strip()
        if v == "":
            return False, "cgroup"  # no memsw / swap file: the kernel accounts no swap
        if cgroup_version == 2:
            return v != "max", "cgroup"
        n = to_int(v)
        if n is not None:
            return n < UNLIMITED_CGROUP and n <= int(requested) + MIB, "cgroup"
    if inspect_swap is not None and to_int(inspect_swap) == -1:
        return False, "engine"
    if "swap limit" in (run_stderr or "").lower() or "without swap" in (run_stderr or "").lower():
        return False, "engine-warning"
    if info_warning:
        return False, "engine-warning"
    if inspect_swap is not None and (to_int(inspect_swap) or 0) > 0:
        return True, "engine"  # stored as asked, and no warning about it
    return True, "assumed"


DM_DEFAULT_BASE_SIZE = 10 * GIB  # DefaultBaseFsSize of Docker 1.x (devmapper/deviceset.go)
# `docker info` shows "Base Device Size" only since Docker 1.8; before, the base size is
# dm.basesize of the daemon's command line, else the engine's default above


def daemon_storage_opts(argv):
    """The daemon's `--storage-opt k=v` options (every era's spelling) -> {k: v}."""
    opts = {}
    argv = list(argv or [])
    for i, arg in enumerate(argv):
        value = None
        if arg in ("--storage-opt", "-storage-opt") and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--storage-opt=") or arg.startswith("-storage-opt="):
            value = arg.split("=", 1)[1]
        if value and "=" in value:
            k, v = value.split("=", 1)
            opts[k.strip().lower()] = v.strip()
    return opts


def docker_daemon_argv(daemon_pid=None):
    """The running docker daemon's command line (list), or None; ``daemon_pid`` (the facts'
    daemon_pid, where known) saves the look through /proc."""
    pid = daemon_pid or find_daemon_pid()
    if not pid:
        return None
    argv = [a for a in (read_text("/proc/%s/cmdline" % pid, 8192) or "").split("\0") if a]
    return argv if is_daemon_cmdline(argv) else None


def dm_base_size(driver, driver_status, daemon_argv=None):
    """devicemapper's per-container size (every container's / is its own thin device of this
    size) -> (bytes, source): 'docker-info' (Docker 1.8+ shows it), 'daemon-option'
    (--storage-opt dm.basesize=), 'engine-default' (10 GiB, Docker 1.x before 1.8 shows
    nothing); (None, None) for other drivers."""
    if (driver or "").lower() != "devicemapper":
        return None, None
    size = base_device_size(driver, driver_status)
    if size:
        return size, "docker-info"
    opt = daemon_storage_opts(daemon_argv).get("dm.basesize")
    # docker's units.RAMInBytes: binary units, an optional b ("10G", "512m", "2gb")
    mt = re.match(r"^(\d+)([kmgtp])?b?$", (opt or "").strip().lower())
    if mt:
        return int(mt.group(1)) * 1024 ** " kmgtp".index(mt.group(2) or " "), "daemon-option"
    return DM_DEFAULT_BASE_SIZE, "engine-default"


def dm_pool_file(driver, driver_status, sys_root="/sys", root_dir=None):
    """The sparse loop file that holds devicemapper's thin pool data (loop-lvm): 'Data loop
    file' (20.10: 'Data file' is then /dev/loopN), else 'Data file' when it is not a device
    (Docker 1.5.0 prints the loop file itself there on some setups); None (direct-lvm: the
    pool is a block device, nothing grows on a filesystem)."""
    if (driver or "").lower() != "devicemapper":
        return None
    status = dict((k.strip().lower(), (v or "").strip())
                  for k, v in (driver_status or {}).items())
    for key in ("data loop file", "data file"):
        path = status.get(key)
        if path and path.startswith("/") and not path.startswith("/dev/"):
            return path
    # only the loop device named ("Data file: /dev/loop0"): the file the kernel backs it with
    dev = status.get("data file") or ""
    if re.match(r"^/dev/loop\d+$", dev):
        return loop_backing_file(dev, sys_root)
    if dev:
        return None  # a block device: direct-lvm
    # nothing named (Docker 1.5.0 restarted on an existing pool prints "Data file: "): the
    # loop device the kernel backs with the loop-lvm file under the docker root
    want = os.path.join(root_dir or "/var/lib/docker", "devicemapper", "devicemapper", "data")
    try:
        loops = sorted(d for d in os.listdir(os.path.join(sys_root, "block"))
                       if d.startswith("loop"))
    except OSError:
        return None
    for d in loops:
        if loop_backing_file(d, sys_root) == want:
            return want
    return None


def loop_backing_file(dev, sys_root="/sys"):
    """/dev/loop0 -> the file behind it (/sys/block/loop0/loop/backing_file), or None."""
    text = read_text(os.path.join(sys_root, "block", os.path.basename(dev), "loop",
                                  "backing_file"), 4096)
    path = (text or "").strip()
    if path.endswith(" (deleted)"):
        path = path[:-len(" (deleted)")]
    return path or None


def dm_pool_space(driver_status):
    """(used, total, available) bytes of the thin pool's data from `docker info`'s
    DriverStatus (None where not shown; 'Data Space Available' came with Docker 1.8)."""
    status = dict((k.strip().lower(), (v or "").strip())
                  for k, v in (driver_status or {}).items())
    return tuple([parse_size(status[k]) if status.get(k) else None
                  for k in ("data space used", "data space total", "data space available")])


def allocated_bytes(path):
    """What a (sparse) file really takes on its filesystem: st_blocks * 512; None if unknown."""
    try:
        st = os.stat(path)
    except (OSError, TypeError):
        return None
    blocks = getattr(st, "st_blocks", None)
    return blocks * 512 if blocks is not None else None


def thin_pool_overcommit(base_size, host_free, pool_available=None):
    """Can one container's own limit (the thin device's size) be reached before the host runs
    out?  -> (over_committed bool or None, the room the host really has): the room is the
    host filesystem's free space under the pool file, and the pool's own free data space
    when smaller."""
    rooms = [r for r in (host_free, pool_available) if r is not None]
    if not base_size or not rooms:
        return None, (min(rooms) if rooms else None)
    room = min(rooms)
    return room < base_size, room


# -- a stall must mean the writer really stalled -----------------------------------------------

STALL_WINDOW_FACTOR = 5     # the window: this many times the slowest step seen so far
STALL_WINDOW_MAX_S = 60.0   # ... at most this (and never past the experiment's deadline)
STALL_BLOCKED_FACTOR = 3    # a writer blocked in I/O (state D) gets this many windows


def stall_window(stall_s, slowest_step_s, cap_s=STALL_WINDOW_MAX_S):
    """How long nothing may change before the writer counts as stalled: at least stall_s,
    and STALL_WINDOW_FACTOR times the longest time one step of progress took so far (an
    emulated or busy machine writes in bursts, seconds apart), at most cap_s."""
    window = max(float(stall_s), STALL_WINDOW_FACTOR * float(slowest_step_s or 0.0))
    return min(window, max(float(stall_s), float(cap_s)))


def stall_decision(progress_idle_s, host_idle_s, window_s, writer):
    """Has the writer really stalled?  -> (False, None) to keep waiting, or (True, detail).

    ``progress_idle_s``: seconds since the container's progress last moved (its file, its
    count, the writer's own write counter); ``host_idle_s``: since anything moved on the host
    (free space, the pool file, dirty/writeback pages); ``writer``: {'pid', 'name', 'state'}
    of the writing process, or None when it is gone.  Stalled: nothing moved in the
    container nor on the host for the window, and the writer is alive and not blocked in
    I/O; a writer in state D (waiting for the disk) gets STALL_BLOCKED_FACTOR windows."""
    idle = min(progress_idle_s, host_idle_s)
    if idle <= window_s:
        return False, None
    if writer is None:
        return True, ("the writer is gone and nothing moved in the container or on the host "
                      "for %.1f s" % idle)
    what = "%s (pid %s) is alive in state %s" % (writer.get("name") or "the writer",
                                                 writer.get("pid"), writer.get("state") or "?")
    if writer.get("state") == "D":
        if idle <= STALL_BLOCKED_FACTOR * window_s:
            return False, None
        return True, ("%s (blocked in I/O) and nothing moved in the container or on the host "
                      "for %.1f s (%d windows of %.1f s)" % (what, idle, STALL_BLOCKED_FACTOR,
                                                             window_s))
    return True, ("%s and nothing moved in the container (its progress, its own write "
                  "counter) or on the host (free space, pool file, dirty pages) for %.1f s "
                  "(window %.1f s)" % (what, idle, window_s))


def parse_proc_io(text):
    """/proc/PID/io -> {'rchar', 'wchar', 'write_bytes', ...} (ints)."""
    out = {}
    for line in (text or "").splitlines():
        k, sep, v = line.partition(":")
        if sep:
            n = to_int(v.strip())
            if n is not None:
                out[k.strip()] = n
    return out


def parse_proc_stat_fields(text):
    """/proc/PID/stat -> (name, state, ppid) or None."""
    if not text or ")" not in text:
        return None
    name = text[text.find("(") + 1:text.rfind(")")]
    rest = text.rsplit(")", 1)[1].split()
    if len(rest) < 2:
        return None
    return name, rest[0], to_int(rest[1])


def find_child(ppid, name):
    """The pid of a child process of ``ppid`` called ``name`` (e.g. dd under the container's
    shell), or None: /proc/PPID/task/PPID/children where the kernel has it, else a scan."""
    text = read_text("/proc/%d/task/%d/children" % (ppid, ppid), 4096)
    cands = [to_int(p) for p in (text or "").split()] if text is not None else None
    if cands is None:
        try:
            cands = [int(p) for p in os.listdir("/proc") if p.isdigit()]
        except OSError:
            return None
    for pid in cands:
        f = parse_proc_stat_fields(read_text("/proc/%d/stat" % pid, 512)) if pid else None
        if f and f[0] == name and f[2] == ppid:
            return pid
    return None


def own_cgroup(path, container_id):
    """Is this cgroup the container's own (its id in the path: /docker/<id>,
    /system.slice/docker-<id>.scope)?  Docker 1.5.0 makes no pids cgroup, so a container's
    pids path is its daemon's (e.g. /user.slice/.../session-3.scope)."""
    cid = (container_id or "")[:12]
    return not cid or cid in (path or "")


def process_ratio(host_procs_before, host_procs_at_peak, container_pids):
    """The processes check's ratio, explained: (host-visible processes at the container's
    peak - before) / the container's own process count.  -> (ratio, numerator,
    denominator); ratio None when a part is unknown."""
    if host_procs_before is None or host_procs_at_peak is None or not container_pids:
        return None, None, container_pids
    num = host_procs_at_peak - host_procs_before
    return round(float(num) / container_pids, 3), num, container_pids


RATIO_DEFINITIONS = {
    "disk": "the largest fall of the host filesystem's free space (root's view) while the "
            "container held its data / the bytes the container wrote",
    "disk-dm": "the largest fall of the host filesystem's free space (root's view, the "
               "filesystem that holds the thin pool's loop file) / the bytes the container "
               "wrote into its own thin device",
    "inodes": "the fall of the host filesystem's free inodes at the container's peak / the "
              "files and folders the container created",
    "memory": "the largest fall of the host's MemAvailable / the container's peak memory use",
    "processes": "the rise of the processes this host sees in /proc (its pid namespace) at "
                 "the container's peak / the container's own processes at the peak (its "
                 "pids cgroup, else the children it started + its shell)",
}


def fmt_bytes(n):
    """1536 -> '1.5 KiB', 33554432 -> '32 MiB'."""
    if n is None:
        return "?"
    n = float(n)
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit, size in (("TiB", 1024 ** 4), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= size:
            v = n / size
            text = ("%.0f" % v) if (v >= 100 or abs(v - round(v)) < 0.05) else ("%.1f" % v)
            return "%s%s %s" % (sign, text, unit)
    return "%s%d bytes" % (sign, int(n))


def fmt_count(n):
    """19960 -> '19,960' (no format-spec comma before Python 2.7)."""
    if n is None:
        return "?"
    s = str(int(n))
    neg = s.startswith("-")
    s = s.lstrip("-")
    groups = []
    while len(s) > 3:
        groups.insert(0, s[-3:])
        s = s[:-3]
    groups.insert(0, s)
    return ("-" if neg else "") + ",".join(groups)


def errno_text(exc):
    """'ENOSPC: No space left on device' from an OSError/IOError."""
    code = getattr(exc, "errno", None)
    name = errno.errorcode.get(code, "") if code is not None else ""
    msg = getattr(exc, "strerror", None) or str(exc)
    if name:
        return "%s: %s" % (name, msg)
    return one_line(msg, 120) or type(exc).__name__


# ---------------------------------------------------------------------------
# the study's resource checks: reading the host (no forks) and the engine's socket
# ---------------------------------------------------------------------------

UNLIMITED_CGROUP = 2 ** 60  # v1 reports "no limit" as a huge number


def parse_loadavg_threads(text):
    """'0.10 0.20 0.30 8/134 10445' -> 134 (threads on the machine)."""
    fields = (text or "").split()
    if len(fields) >= 4 and "/" in fields[3]:
        return to_int(fields[3].split("/")[1])
    return None


def parse_vmstat(text):
    """/proc/vmstat -> {key: int}."""
    result = {}
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) == 2:
            value = to_int(fields[1])
            if value is not None:
                result[fields[0]] = value
    return result


def mem_available(meminfo):
    """(bytes, source): MemAvailable, else MemFree + Buffers + Cached (kernels before 3.14)."""
    if meminfo.get("MemAvailable") is not None:
        return meminfo["MemAvailable"], "MemAvailable"
    if meminfo.get("MemFree") is not None:
        return (meminfo.get("MemFree", 0) + meminfo.get("Buffers", 0)
                + meminfo.get("Cached", 0)), "MemFree+Buffers+Cached"
    return None, None


def parse_proc_cgroup(text):
    """/proc/PID/cgroup -> {controller: path}; the v2 (unified) entry is under ''."""
    result = {}
    for line in (text or "").splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        names = parts[1].split(",") if parts[1] else [""]
        for n in names:
            if n.startswith("name="):
                continue
            result[n] = parts[2]
    return result


def parse_cgroup_mounts(mountinfo_text):
    """cgroup mounts from mountinfo -> [{'root', 'mountpoint', 'version', 'controllers'}]."""
    mounts = []
    for line in (mountinfo_text or "").splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 1:
            continue
        fstype = rf[0]
        if fstype == "cgroup2":
            mounts.append({"root": _unescape_mount(lf[3]), "mountpoint": _unescape_mount(lf[4]),
                           "version": 2, "controllers": []})
        elif fstype == "cgroup":
            opts = rf[2].split(",") if len(rf) > 2 else []
            mounts.append({"root": _unescape_mount(lf[3]), "mountpoint": _unescape_mount(lf[4]),
                           "version": 1, "controllers": opts})
    return mounts


def cgroup_dir(proc_cgroup, mounts, controller):
    """Host directory of a process's cgroup for ``controller`` -> (path, version) or (None, None).

    Handles nested hosts (a lab host in a container sees only its own subtree: the mount's
    root is stripped from the process's path)."""
    for m in mounts:
        if m["version"] == 1 and controller in m["controllers"]:
            path = proc_cgroup.get(controller)
            if path is None:
                continue
            return _join_cgroup(m, path), 1
    for m in mounts:
        if m["version"] == 2 and "" in proc_cgroup:
            return _join_cgroup(m, proc_cgroup[""]), 2
    return None, None


def _join_cgroup(mount, path):
    root = mount["root"].rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root):]
    return mount["mountpoint"].rstrip("/") + "/" + path.lstrip("/")


def cgroup_root_dir(mounts, controller):
    """(mountpoint, version) of the hierarchy holding ``controller`` as this host sees it."""
    for m in mounts:
        if m["version"] == 1 and controller in m["controllers"]:
            return m["mountpoint"], 1
    for m in mounts:
        if m["version"] == 2:
            return m["mountpoint"], 2
    return None, None


def cgroup_view(proc_cgroup, mounts, controller):
    """(the process's cgroup path as this host names it, the root of the tree this host
    sees) for ``controller``; (None, None) when unknown.  A lab host in a container sees
    only its own subtree: the mount's root (mountinfo field 4) says which one."""
    for m in mounts:
        if m["version"] == 1 and controller in m["controllers"]:
            path = proc_cgroup.get(controller)
            if path is not None:
                return path, m["root"]
    for m in mounts:
        if m["version"] == 2 and "" in proc_cgroup:
            return proc_cgroup[""], m["root"]
    return None, None


def _read_cg_number(path):
    text = read_text(path, 64)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    value = to_int(text)
    if value is not None and value >= UNLIMITED_CGROUP:
        return None
    return value


def host_cgroup_limits(mountinfo_text=None):
    """Limits of the visible cgroup root: what bounds the whole host when it is itself a
    container (a lab host); None where there is none (a real host's root has none)."""
    if mountinfo_text is None:
        mountinfo_text = read_text("/proc/self/mountinfo")
    mounts = parse_cgroup_mounts(mountinfo_text)
    result = {"memory_dir": None, "memory_limit": None, "pids_dir": None, "pids_limit": None}
    d, v = cgroup_root_dir(mounts, "memory")
    if d:
        limit = _read_cg_number(os.path.join(d, "memory.limit_in_bytes" if v == 1
                                             else "memory.max"))
        if limit is not None:
            result["memory_dir"], result["memory_limit"] = d, limit
            result["memory_usage_file"] = os.path.join(
                d, "memory.usage_in_bytes" if v == 1 else "memory.current")
    d, v = cgroup_root_dir(mounts, "pids")
    if d:
        limit = _read_cg_number(os.path.join(d, "pids.max"))
        if limit is not None:
            result["pids_dir"], result["pids_limit"] = d, limit
    return result


def self_cpu_seconds():
    """The agent's own CPU time (user + system), from /proc/self/stat; None if unknown."""
    text = read_text("/proc/self/stat")
    if not text or ")" not in text:
        return None
    fields = text.rsplit(")", 1)[1].split()
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / float(ticks)
    except (ValueError, IndexError, OSError, AttributeError):
        return None


def self_maxrss_bytes():
    """The agent's peak resident memory (VmHWM); None if unknown."""
    status = parse_meminfo(read_text("/proc/self/status"))
    return status.get("VmHWM")


def count_processes():
    try:
        return len([p for p in os.listdir("/proc") if p.isdigit()])
    except OSError:
        return None


class HostSampler(object):
    """Reads the shared resources of the host without forking: statvfs of one filesystem,
    /proc/meminfo, /proc/loadavg, /proc/[0-9]*, the visible cgroup root's limits."""

    def __init__(self, fs_path):
        self.fs_path = fs_path
        self.pid_max = _read_int("/proc/sys/kernel/pid_max")
        self.threads_max = _read_int("/proc/sys/kernel/threads-max")
        try:
            self.cg = host_cgroup_limits()
        except Exception:
            self.cg = {"memory_limit": None, "pids_limit": None}
        self.mem_source = None
        self.pool_file = None     # devicemapper loop-lvm: the thin pool's sparse data file
        self.pool_fs = None       # its filesystem, when it is not the sampled one

    def pids_total(self):
        values = [v for v in (self.pid_max, self.threads_max, self.cg.get("pids_limit"))
                  if v]
        return min(values) if values else None

    def sample(self):
        s = {"t": time.time(), "free_bytes": None, "free_bytes_root": None, "size_bytes": None,
             "free_inodes": None, "inodes_total": None, "mem_available": None,
             "swap_free": None, "procs": None, "threads": None, "free_pids": None}
        try:
            st = os.statvfs(self.fs_path)
            frsize = st.f_frsize or st.f_bsize
            s["free_bytes"] = st.f_bavail * frsize
            s["free_bytes_root"] = st.f_bfree * frsize
            s["size_bytes"] = st.f_blocks * frsize
            s["free_inodes"] = st.f_favail if st.f_favail else st.f_ffree
            s["inodes_total"] = st.f_files
        except (OSError, AttributeError):
            pass
        meminfo = parse_meminfo(read_text("/proc/meminfo"))
        avail, self.mem_source = mem_available(meminfo)
        if self.cg.get("memory_limit") and avail is not None:
            usage = _read_cg_number(self.cg.get("memory_usage_file") or "")
            if usage is not None:
                avail = min(avail, max(0, self.cg["memory_limit"] - usage))
        s["mem_available"] = avail
        s["swap_free"] = meminfo.get("SwapFree")
        if meminfo.get("Dirty") is not None:  # data on its way to a disk: not stalled
            s["dirty_bytes"] = meminfo["Dirty"] + meminfo.get("Writeback", 0)
        if self.pool_file:
            s["pool_bytes"] = allocated_bytes(self.pool_file)
            if self.pool_fs:
                s["pool_fs_free_bytes"] = fs_free(self.pool_fs).get("free_bytes")
        s["procs"] = count_processes()
        s["threads"] = parse_loadavg_threads(read_text("/proc/loadavg"))
        free = []
        if s["threads"] is not None:
            for total in (self.pid_max, self.threads_max):
                if total:
                    free.append(total - s["threads"])
        if self.cg.get("pids_limit"):
            cur = _read_cg_number(os.path.join(self.cg["pids_dir"], "pids.current"))
            if cur is not None:
                free.append(self.cg["pids_limit"] - cur)
        s["free_pids"] = max(0, min(free)) if free else None
        return s


def fs_free(path):
    """{'free_bytes', 'free_inodes', 'size_bytes', 'inodes_total'} of the filesystem holding
    ``path`` (root's view of the bytes: reserved blocks included); {} if unknown."""
    try:
        st = os.statvfs(path)
    except (OSError, TypeError, AttributeError):
        return {}
    frsize = st.f_frsize or st.f_bsize
    return {"free_bytes": st.f_bfree * frsize, "free_inodes": st.f_ffree,
            "size_bytes": st.f_blocks * frsize, "inodes_total": st.f_files}


def engine_socket_path():
    """The engine's unix socket (DOCKER_HOST unix://..., else /var/run/docker.sock); None
    when DOCKER_HOST points elsewhere (tcp)."""
    host = os.environ.get("DOCKER_HOST") or ""
    if host.startswith("unix://"):
        return host[len("unix://"):]
    if host:
        return None
    return "/var/run/docker.sock"


def engine_request(method, path, timeout=10.0, sock_path=None):
    """One HTTP/1.0 request to the engine over its unix socket, without forking.

    Returns (status, body text); raises socket.error/OSError/ValueError when it cannot.
    """
    sock_path = sock_path or engine_socket_path()
    if not sock_path:
        raise ValueError("DOCKER_HOST is not a unix socket")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(sock_path)
        req = "%s %s HTTP/1.0\r\nHost: docker\r\nContent-Length: 0\r\n\r\n" % (method, path)
        s.sendall(req.encode("ascii"))
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    finally:
        s.close()
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = to_text(head.split(b"\r\n")[0])
    parts = status_line.split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError("not an HTTP answer: %r" % status_line[:60])
    return int(parts[1]), to_text(body)


def signal_process(pid, start_time=None):
    """SIGKILL one process from the host, without forking and without the engine; the
    container's first process is its pid namespace's init, so the kernel then kills every
    other process of the container.  ``start_time`` (from /proc/PID/stat when the container
    started) makes sure the pid was not reused.  True when the signal was sent."""
    if not pid or not pid_alive(pid, start_time):
        return False
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except OSError:
        return False


def kill_container(docker, name, timeout=10.0, pid=None, pid_start=None,
                   prefer_signal=False):
    """SIGKILL a container without forking: the engine's socket, or a signal to its first
    process (``pid``); the CLI last.  ``prefer_signal``: the signal first (the host has no
    pids left: the engine would need to fork runc to stop it, and a fork would fail).

    Returns "socket", "signal", "cli", or None when nothing worked (e.g. it was not
    running)."""
    if not name.startswith(NAME_PREFIX):
        return None
    if prefer_signal and signal_process(pid, pid_start):
        return "signal"
    try:
        status, _body = engine_request("POST", "/containers/%s/kill" % name, timeout)
        if status in (204, 200):
            return "socket"
        if status in (304, 409):  # not running any more
            return None
    except (socket.error, OSError, ValueError):
        pass
    if signal_process(pid, pid_start):  # the engine failed or timed out
        return "signal"
    if prefer_signal:  # no pids for the CLI either
        return None
    res = docker.run(["kill", name], timeout)
    return "cli" if res.ok else None


def inspect_state(docker, name, timeout=10.0, use_cli=True):
    """The container's inspect document: socket first (no fork), then the CLI; {} if none."""
    try:
        status, body = engine_request("GET", "/containers/%s/json" % name, timeout)
        if status == 200:
            data = json.loads(body)
            if isinstance(data, dict):
                return data
    except (socket.error, OSError, ValueError):
        pass
    if not use_cli:
        return {}
    res = docker.run(["inspect", name], timeout)
    if res.ok:
        try:
            data = json.loads(res.out)
        except ValueError:
            return {}
        if isinstance(data, list) and data:
            return data[0]
    return {}


def selinux_enforcing():
    return (read_text("/sys/fs/selinux/enforce", 8) or "").strip() == "1"


def protect_self():
    """Keep the OOM killer off the agent: oom_score_adj -1000, or oom_adj -17 on old kernels."""
    for path, value in (("/proc/self/oom_score_adj", "-1000"), ("/proc/self/oom_adj", "-17")):
        if not os.path.exists(path):
            continue
        try:
            f = open(path, "w")
            try:
                f.write(value + "\n")
            finally:
                f.close()
            return {"oom_file": os.path.basename(path), "oom_value": int(value),
                    "oom_error": None}
        except (IOError, OSError) as exc:
            return {"oom_file": os.path.basename(path), "oom_value": None,
                    "oom_error": errno_text(exc)}
    return {"oom_file": None, "oom_value": None, "oom_error": "no oom_score_adj or oom_adj"}


def reserve_space(path, size):
    """Write ``size`` real bytes to ``path`` (not sparse) so the result can be written later
    even on a full disk; returns the bytes reserved (0 when it could not)."""
    try:
        f = open(path, "wb")
        try:
            block = b"\0" * (64 * KIB)
            left = int(size)
            while left > 0:
                f.write(block[:min(left, len(block))])
                left -= len(block)
            f.flush()
            os.fsync(f.fileno())
        finally:
            f.close()
        return int(size)
    except (IOError, OSError):
        try:
            os.remove(path)
        except OSError:
            pass
        return 0


# ---------------------------------------------------------------------------
# the study's resource checks: the host's own attempt at the container's peak
# ---------------------------------------------------------------------------

def host_try_write(directory, size):
    path = os.path.join(directory, "labctl-hostcheck-write")
    try:
        try:
            f = open(path, "wb")
            try:
                f.write(b"\1" * int(size))
                f.flush()
                os.fsync(f.fileno())
            finally:
                f.close()
            return True, None
        except (IOError, OSError) as exc:
            return False, errno_text(exc)
    finally:
        try:
            os.remove(path)
        except OSError:
            pass


def host_try_create(directory):
    path = os.path.join(directory, "labctl-hostcheck-create")
    try:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
            return True, None
        except OSError as exc:
            return False, errno_text(exc)
    finally:
        try:
            os.remove(path)
        except OSError:
            pass


def host_try_alloc(size):
    try:
        data = b"\1" * int(size)  # every page written
        ok = len(data) == int(size)
        del data
        return ok, None
    except MemoryError:
        return False, "ENOMEM: MemoryError allocating %s" % fmt_bytes(size)


def host_try_fork():
    try:
        pid = os.fork()
    except OSError as exc:
        return False, errno_text(exc)
    if pid == 0:  # the child does nothing at all
        os._exit(0)
    try:
        os.waitpid(pid, 0)
    except OSError:
        pass
    return True, None


def host_checks(resource, directory, limits):
    """The host tries the same thing the container did; flat metrics."""
    m = {}
    if resource in ("disk", "inodes"):
        m["host_write_bytes"] = int(limits["host_write_bytes"])
        m["host_write_ok"], m["host_write_error"] = host_try_write(
            directory, limits["host_write_bytes"])
        m["host_create_ok"], m["host_create_error"] = host_try_create(directory)
    elif resource == "memory":
        m["host_alloc_bytes"] = int(limits["host_alloc_bytes"])
        m["host_alloc_ok"], m["host_alloc_error"] = host_try_alloc(limits["host_alloc_bytes"])
    elif resource == "processes":
        m["host_fork_ok"], m["host_fork_error"] = host_try_fork()
    return m


# ---------------------------------------------------------------------------
# the study's resource checks: OOM attribution, stop reasons, verdicts (pure)
# ---------------------------------------------------------------------------

_KILLED_RE = re.compile(r"Killed process (\d+)(?:,\s*UID \d+,)?\s*\(([^)]*)\)")
_OOMKILL_RE = re.compile(r"oom-kill:.*?task_memcg=([^,\s]*).*?task=([^,\s]*),pid=(\d+)")


def kernel_oom_lines(before_text, after_text):
    """OOM lines that appeared in the kernel log between two `dmesg` outputs."""
    before = (before_text or "").splitlines()
    after = (after_text or "").splitlines()
    start = 0
    if before:
        last = before[-1]
        for i in range(len(after) - 1, -1, -1):
            if after[i] == last:
                start = i + 1
                break
    new = after[start:]
    return [ln.strip() for ln in new
            if "Killed process" in ln or "oom-kill:" in ln or "out of memory" in ln.lower()]


def thin_pool_kernel_lines(before_text, after_text):
    """devicemapper thin-pool lines (out of data space, read-only mode, I/O errors) that
    appeared in the kernel log between two `dmesg` outputs."""
    before = (before_text or "").splitlines()
    after = (after_text or "").splitlines()
    start = 0
    if before:
        for i in range(len(after) - 1, -1, -1):
            if after[i] == before[-1]:
                start = i + 1
                break
    return [ln.strip() for ln in after[start:] if "device-mapper: thin" in ln]


def oom_line_rss(lines):
    """Resident bytes (anon + file) of the last process the OOM killer named, or None."""
    for line in reversed(lines or []):
        m = re.search(r"anon-rss:(\d+)kB,\s*file-rss:(\d+)kB", line)
        if m:
            return (int(m.group(1)) + int(m.group(2))) * KIB
    return None


def _memcg_inside(path, scope):
    return not scope or path == scope or path.startswith(scope + "/")


def oom_host_scope(view_path, mount_root, kernel_lines, container_id):
    """The cgroup (as the kernel log names it) that holds this whole host, or None when it
    cannot be told (then every kill counts as the host's).

    On a real host that is the root ('').  A lab host in a container shares the kernel (and
    its log and /proc/vmstat) with other lab hosts: a kill of theirs is not this host's.
    The kernel names the container's cgroup in full (task_memcg=/docker/LAB/docker/CID);
    this host names it ``view_path`` (/docker/CID in its own cgroup namespace, or the full
    path without one) and sees the tree below ``mount_root``."""
    if view_path is None:
        return None
    root = (mount_root or "/").rstrip("/")
    view = view_path.rstrip("/")
    kernel_path = None
    cid = (container_id or "")[:12]
    if cid:
        for line in kernel_lines or []:
            m = _OOMKILL_RE.search(line)
            if m and cid in m.group(1):
                kernel_path = m.group(1).rstrip("/")
                break
    under_root = not root or view == root or view.startswith(root + "/")
    if kernel_path is not None:
        if not under_root or not kernel_path.endswith(view):
            return None
        # what the kernel puts before the host's name of it, then the host's own subtree
        return (kernel_path[:len(kernel_path) - len(view)] + root).rstrip("/")
    # no line of the container: the host's names are the kernel's when they include the
    # root of the tree it sees (no cgroup namespace of its own); else it cannot be told
    if root and under_root:
        return root
    return None


def attribute_oom(oom_killed, exit_code, killed_by_agent, vmstat_delta, kernel_lines,
                  container_id=None, host_scope=None):
    """Who did the OOM killer kill during an experiment?

    Returns {'oom_victim': 'container'|'host'|'container+host'|'container-likely'|'none',
    'oom_kills_total', 'oom_kills_container', 'oom_kills_other', 'oom_other_victims',
    'oom_kills_outside', 'oom_outside_victims'}.
    vmstat's oom_kill is machine-wide (kernel 4.13+); kernel lines name the victims (and,
    since 4.19, their cgroup).  Only a process of this run's container counts as the
    container; with ``host_scope`` (oom_host_scope) a kill in a cgroup outside this host
    (another lab host on the same kernel) counts as neither: it is "outside".
    """
    killed = []   # (pid, name, in_container or None)
    memcg = {}
    outside = []
    for line in kernel_lines or []:
        m = _OOMKILL_RE.search(line)
        if m:
            path = m.group(1)
            if host_scope and not _memcg_inside(path, host_scope):
                outside.append((m.group(3), m.group(2)))
                continue
            memcg[m.group(3)] = (container_id is not None and len(container_id) >= 12
                                 and container_id[:12] in path)
    outside_pids = set([o[0] for o in outside])
    for line in kernel_lines or []:
        m = _KILLED_RE.search(line)
        if m and m.group(1) not in outside_pids:
            killed.append((m.group(1), m.group(2), memcg.get(m.group(1))))
    counted = vmstat_delta
    if counted is not None and outside:
        counted = max(0, counted - len(outside))
    total = max(counted or 0, len(killed))
    in_container = len([k for k in killed if k[2]])
    other_named = [k for k in killed if k[2] is False]
    if oom_killed:
        in_container = max(in_container, 1)
    other = max(0, total - in_container)
    if other_named:
        other = max(other, len(other_named))
    if in_container and other:
        victim = "container+host"
    elif in_container:
        victim = "container"
    elif other:
        victim = "host"
    elif exit_code == 137 and not killed_by_agent:
        victim = "container-likely"
    else:
        victim = "none"
    names = [k[1] for k in other_named]
    if not names and other and not memcg:
        names = [k[1] for k in killed[in_container:]] if oom_killed else [k[1] for k in killed]
    return {"oom_victim": victim, "oom_kills_total": total,
            "oom_kills_container": in_container, "oom_kills_other": other,
            "oom_other_victims": ",".join(names[:5]) or None,
            "oom_kills_outside": len(outside),
            "oom_outside_victims": ",".join([o[1] for o in outside][:5]) or None}


def classify_container_error(text):
    """Container stderr -> 'enospc' | 'edquot' | 'eagain' | 'enomem' | None."""
    low = (text or "").lower()
    if "no space left" in low:
        return "enospc"
    if "quota exceeded" in low:
        return "edquot"
    if ("cannot fork" in low or "resource temporarily unavailable" in low
            or "can't fork" in low or "fork: retry" in low):
        return "eagain"
    if "cannot allocate memory" in low or "memory exhausted" in low:
        return "enomem"
    return None


def decide_stop_reason(o):
    """Why the container stopped, from what was observed (a dict):

    resource ('disk'|'inodes'|'memory'|'processes'; None: as memory),
    agent_stop ('floor'|'timeout'|None), reached_target (bool: it did all it was asked),
    cap_limited_by_floor, container_error (classify_container_error), oom_killed,
    exit_code, killed_by_agent, limit_applied, near_limit (usage at its own limit),
    host_exhausted (the host's free amount hit 0), host_had_room (disk: the host's
    filesystem clearly still had room, see host_had_room()).

    disk: ENOSPC while the host's filesystem still had room is the container's own limit
    (--storage-opt size=, devicemapper's base device size, a quota), not the host's disk;
    near_limit False (a known limit far from reached) keeps it "enospc".
    """
    if o.get("agent_stop") == "floor":
        return "floor"
    # exit 137 is a SIGKILL; without the engine's or the kernel's word it counts as an OOM
    # kill only where memory was the resource (an old kernel may leave no other trace)
    unexplained_kill = o.get("exit_code") == 137 and not o.get("killed_by_agent") and \
        o.get("resource") in (None, "memory")
    if o.get("oom_killed") or unexplained_kill:
        return "container-limit" if o.get("limit_applied") else "oom-kill"
    err = o.get("container_error")
    if err == "edquot":
        return "container-limit"
    if err == "eagain":
        if o.get("limit_applied") and o.get("near_limit"):
            return "container-limit"
        return "eagain"
    if err == "enospc" and o.get("resource") == "disk" and o.get("host_had_room") and \
            not o.get("host_exhausted") and o.get("near_limit") is not False:
        return "container-limit"
    if err == "enospc" or (o.get("host_exhausted") and not o.get("reached_target")):
        return "enospc"
    if o.get("reached_target"):
        return "floor" if o.get("cap_limited_by_floor") else "cap"
    if o.get("agent_stop") == "timeout":
        return "timeout"
    if o.get("agent_stop") == "stall":
        # no progress for stall_s: at its own limit that is the limit; otherwise the container
        # (or a slow host, e.g. an emulated VM) stopped making progress before any limit
        return "container-limit" if o.get("limit_applied") and o.get("near_limit") else "stall"
    return "error"


def _host_effect(m, keys):
    """'the host could still write a 1 MiB file and create a file' or the failure."""
    failed = []
    ok = []
    words = {"host_write": "write a %s file" % fmt_bytes(m.get("host_write_bytes")),
             "host_create": "create a file", "host_alloc": "allocate %s"
             % fmt_bytes(m.get("host_alloc_bytes")), "host_fork": "fork a process"}
    for k in keys:
        v = m.get(k + "_ok")
        if v is None:
            continue
        if v:
            ok.append(words[k])
        else:
            failed.append("%s (%s)" % (words[k], m.get(k + "_error") or "failed"))
    if failed:
        return "the host could NOT %s" % " or ".join(failed)
    if ok:
        return "the host could still %s" % " and ".join(ok)
    return "the host was not checked"


def _floor_text(key, value):
    """'256 MiB free', '10,000 free inodes', '512 MiB MemAvailable', '2,000 free pids'."""
    if key == "free_bytes":
        return "%s free" % fmt_bytes(value)
    if key == "free_inodes":
        return "%s free inodes" % fmt_count(value)
    if key == "mem_available":
        return "%s MemAvailable" % fmt_bytes(value)
    return "%s free pids" % fmt_count(value)


def _ratio_text(r):
    return "n/a" if r is None else "%.2f" % r


def _disk_limit_words(m):
    """('its 64 MiB disk limit', '--storage-opt size=') or ("its 10 GiB disk limit",
    "devicemapper's base device size"); (None, None) when no limit is known."""
    limit = m.get("disk_limit_bytes")
    if not limit:
        return None, None
    how = {"base-device-size": "devicemapper's base device size",
           "storage-opt": "--storage-opt size="}.get(m.get("disk_limit_source"))
    return "its %s disk limit" % fmt_bytes(limit), how


def _own_fs_words(m):
    """'the container's / is a filesystem of its own (9.8 GiB, 655,360 inodes, on its own
    devicemapper thin device) whose free inodes fell by 2,002', or None."""
    if not m.get("container_fs_own"):
        return None
    text = "the container's / is a filesystem of its own (%s, %s inodes%s)" % (
        fmt_bytes(m.get("container_fs_size_bytes")), fmt_count(m.get("container_fs_inodes_total")),
        ", on its own devicemapper thin device" if m.get("storage_driver") == "devicemapper"
        else "")
    if m.get("container_fs_free_inodes_delta") is not None:
        text += " whose free inodes fell by %s" % fmt_count(m["container_fs_free_inodes_delta"])
    return text


def _overcommit_words(m):
    size = fmt_bytes(m.get("disk_limit_bytes") or m.get("container_fs_size_bytes"))
    room = fmt_bytes(m.get("thin_pool_room_bytes"))
    if m.get("thin_pool_overcommitted"):
        return ("the thin pool over-commits: each container may fill its %s device, but the "
                "pool has only %s to grow into on this host, so the host runs out before a "
                "container reaches its own limit" % (size, room))
    if m.get("thin_pool_overcommitted") is False:
        return ("the pool has %s to grow into on this host, more than one container's %s "
                "device" % (room, size))
    return None


def _dm_disk_words(m, overcommit=True):
    """devicemapper loop-lvm: where the container's bytes went, in plain words; None else."""
    pool = m.get("pool_data_file")
    if m.get("storage_driver") != "devicemapper" or "pool_data_file" not in m:
        return None
    size = m.get("container_fs_size_bytes") or m.get("base_device_size_bytes")
    if not pool:
        text = ("devicemapper: the container wrote into its own %s thin device; the pool's "
                "data file was not found (direct-lvm: a block device, not a file on the host's "
                "filesystem)" % fmt_bytes(size))
    else:
        text = ("devicemapper: the container wrote into its own %s thin device, which lives "
                "in the sparse pool file %s on the host's filesystem" % (fmt_bytes(size), pool))
        if m.get("pool_file_growth_bytes") is not None:
            text += ("; the pool file grew by %s (allocated blocks, ratio %s) and the host's "
                     "free space fell by %s (ratio %s)"
                     % (fmt_bytes(m["pool_file_growth_bytes"]),
                        _ratio_text(m.get("pool_growth_ratio")),
                        fmt_bytes(m.get("ratio_numerator")),
                        _ratio_text(m.get("landed_on_host_ratio"))))
    if m.get("pool_data_space_growth_bytes") is not None:
        text += "; the pool's Data Space Used rose by %s" % fmt_bytes(
            m["pool_data_space_growth_bytes"])
    oc = _overcommit_words(m) if overcommit else None
    if oc:
        text += "; " + oc
    if m.get("thin_pool_read_only"):
        text += ("; the kernel switched the thin pool to read-only (%s): every container of "
                 "this engine lost its writable disk until the pool is repaired"
                 % (m.get("thin_pool_kernel_line") or "?"))
    return text


def _disk_verdict(name, m, reason, stopped, where):
    got = fmt_bytes(m.get("written_bytes"))
    written = m.get("written_bytes") or 0
    ratio = m.get("landed_on_host_ratio")
    effect = _host_effect(m, ("host_write", "host_create"))
    limit = m.get("disk_limit_bytes")
    limit_words, how = _disk_limit_words(m)
    refused = ""
    if name == "disk-limited" and m.get("storage_opt_size") == "refused":
        refused = " (--storage-opt size=%s was refused, the engine says: %s)" % (
            fmt_bytes(m.get("disk_limit_requested_bytes")), m.get("storage_opt_error") or "?")
    if ratio is not None and ratio >= 0.8:
        landed = ("every byte written landed on the host's %s (free space fell by %s, "
                  "ratio %s)" % (where, fmt_bytes(m.get("ratio_numerator",
                                                        m.get("host_free_bytes_delta"))),
                                 _ratio_text(ratio)))
    elif ratio is not None and ratio >= 0.2:
        landed = ("part of what was written landed on the host's %s (ratio %s)"
                  % (where, _ratio_text(ratio)))
    else:
        landed = ("what was written did not show up as lost free space on the host's %s "
                  "(ratio %s)" % (where, _ratio_text(ratio)))
    if reason == "container-limit":
        err = {"edquot": "EDQUOT", "enospc": "ENOSPC"}.get(m.get("container_error"),
                                                          "ENOSPC/EDQUOT")
        if limit_words:
            head = "contained: the container stopped at %s (%s%s after %s)" % (
                limit_words, how + "; " if how else "", err, got)
        else:
            head = ("contained: a limit of the container's own stopped it (%s after %s; no "
                    "per-container limit is known for %s)" % (
                        err, got, m.get("storage_driver") or "this storage driver"))
        return "%s%s; the host's filesystem kept %s free and %s" % (
            head, refused, fmt_bytes(m.get("host_free_bytes_min")), effect)
    past = bool(limit) and written > 1.05 * limit
    if reason == "enospc":
        follows = ("a container can fill the host disk" if not m.get("host_write_ok", True)
                   or not m.get("host_create_ok", True) else
                   "the container's disk filled, not the host's")
        if limit_words:
            follows += "; %s (%s) did not stop it first" % (limit_words, how or "?")
        return "%s after %s%s: %s, and %s: %s" % (stopped, got, refused, landed, effect,
                                                 follows)
    at_cap = reason == "cap"
    if limit_words and past:
        return ("NOT contained: the container wrote %s, past %s (%s), until it was %s; %s; %s: "
                "the limit did not hold%s" % (got, limit_words, how or "?", stopped, landed,
                                              effect, refused))
    if limit_words and reason in ("cap", "floor", "timeout", "stall") and not past and \
            m.get("disk_limit_source") == "base-device-size" and m.get("thin_pool_overcommitted"):
        return ("%s after %s, far below %s (%s, a per-container limit that exists), which cannot "
                "be reached on this host: %s; %s; %s: a container can fill the host disk"
                % (stopped, got, limit_words, how or "?", _overcommit_words(m), landed, effect))
    if limit_words and reason in ("cap", "floor"):
        return ("%s after %s, before %s (%s) was reached%s: whether the limit holds was not "
                "tested (raise disk_cap_bytes above it, or run with --exhaust); %s; %s"
                % (stopped, got, limit_words, how or "?", refused, landed, effect))
    follows = ("no container limit applied up to %s: a container can fill the host disk"
               % got) if ratio is not None and ratio >= 0.8 else (
        "no container limit applied up to %s, but the host's free space did not follow"
        % got)
    if at_cap:
        return "%s: %s; %s; %s" % (stopped, landed, effect, follows)
    return "%s after %s: %s; %s; %s" % (stopped, got, landed, effect, follows)


def _swap_note(m):
    """memory-limited: '; swap was NOT limited (...)' when --memory-swap did not apply."""
    if m.get("memory_swap_limit_applied") is True:
        return ("; swap was limited too (--memory-swap applied: %s; no swap warning from the "
                "engine)" % {"cgroup": "the container's cgroup has its swap limit",
                             "engine": "the engine stored it"}.get(
                    m.get("memory_swap_limit_source"), "assumed"))
    if m.get("memory_swap_limit_applied") is not False:
        return ""
    if m.get("engine_run_warning") and "swap" in m["engine_run_warning"].lower():
        why = "docker run warned \"%s\"" % m["engine_run_warning"]
    elif m.get("engine_swap_limit_warning"):
        why = "the engine warns \"No swap limit support\""
    else:
        why = "the kernel accounts no swap for the container's cgroup"
    note = ("; swap was NOT limited: %s, so --memory-swap did not apply (the study's Ubuntu "
            "14.04 situation) and the container can go past its -m limit into the host's "
            "swap" % why)
    if m.get("host_swap_total_bytes") == 0:
        note += " (this host has no swap, so it made no difference here)"
    elif m.get("host_swap_total_bytes"):
        note += " (%s of swap on this host)" % fmt_bytes(m.get("host_swap_total_bytes"))
    return note


def pids_unavailable_verdict(server_version, why, m):
    """processes-limited where no per-container process limit exists: the finding."""
    vt = version_tuple(server_version)
    if vt is None or vt < (1, 11):
        head = ("not available: --pids-limit arrived in Docker 1.11; Docker %s has no "
                "per-container process limit" % (server_version or "(unknown version)"))
    else:
        head = ("not available: this kernel has no pids cgroup (Linux 4.3+), so Docker %s "
                "cannot limit a container's processes" % server_version)
    return ("%s, so nothing but the host's own limits (pid_max %s, threads-max %s) stops a "
            "container's processes: see the processes check for how far one gets (%s)"
            % (head, fmt_count(m.get("host_pid_max")), fmt_count(m.get("host_threads_max")),
               why))


def resource_verdict(name, m):
    """A plain sentence: what was observed, and what follows from it."""
    resource = RESOURCE_OF[name]
    reason = m.get("stop_reason")
    where = "%s filesystem (%s)" % (m.get("target_path") or "?", m.get("target_fstype") or "?")
    if reason == "floor" and not m.get("container_started"):
        before = {"disk": m.get("host_free_bytes_before"),
                  "inodes": m.get("host_free_inodes_before"),
                  "memory": m.get("host_mem_available_before"),
                  "processes": m.get("host_free_pids_before")}[resource]
        key = FREE_KEY[resource]
        floor = m.get("floor")
        if m.get("floor_tripped"):
            key, before, floor = (m["floor_tripped"], m.get("floor_tripped_value"),
                                  m.get("floor_tripped_at"))
        return ("not run: the host has only %s, at or below the safety floor of %s; lower the "
                "floor with --limit or free some to run it" % (
                    _floor_text(key, before), _floor_text(key, floor)))
    if reason == "error":
        return "error: the container stopped without a known cause (exit %s: %s)" % (
            m.get("container_exit_code"), m.get("container_error_line") or "no output")
    stop_words = {
        "cap": "stopped at the cap of %s" % (fmt_bytes(m.get("cap_effective"))
                                            if resource in ("disk", "memory")
                                            else fmt_count(m.get("cap_effective"))),
        "floor": "stopped by the agent at the host's safety floor of %s" % (
            _floor_text(m.get("floor_tripped") or FREE_KEY[resource],
                        m.get("floor_tripped_at", m.get("floor")))),
        "enospc": "stopped at ENOSPC",
        "eagain": "stopped at EAGAIN (fork failed)",
        "oom-kill": "OOM-killed",
        "container-limit": "stopped by its own limit",
        "timeout": ("stopped at the agent's own time limit (--timeout: %g s left for this "
                    "experiment)" % m["timeout_s_effective"])
        if m.get("timeout_source") == "agent-deadline" else
        "stopped at the time limit of %g s" % (m.get("experiment_timeout_s") or 0),
        "stall": ("stopped by the agent: the writer stalled (%s)" % m["stall_detail"])
        if m.get("stall_detail") else "stopped by the agent when it made no progress for "
        "%g s" % (m.get("stall_s") or DEFAULT_LIMITS.get("stall_s") or 0),
    }
    stopped = stop_words.get(reason, "stopped (%s)" % reason)
    at_cap = reason == "cap"
    if resource == "disk":
        text = _disk_verdict(name, m, reason, stopped, where)
        dm = _dm_disk_words(m, "over-commits" not in text)
        return ("%s; %s" % (text, dm)) if dm else text
    if resource == "inodes":
        got = fmt_count(m.get("files_created"))
        if not m.get("host_inodes_total"):
            return ("%s after %s files: the host's %s has no fixed inode count, so inodes "
                    "cannot run out there (the files used disk space instead); %s"
                    % (stopped, got, where, _host_effect(m, ("host_write", "host_create"))))
        ratio = m.get("landed_on_host_ratio")
        effect = _host_effect(m, ("host_create", "host_write"))
        if ratio is not None and ratio >= 0.8:
            landed = ("every file created used an inode of the host's %s (free inodes fell by "
                      "%s, ratio %s)" % (where, fmt_count(m.get("host_free_inodes_delta")),
                                         _ratio_text(ratio)))
            follows = "a container can exhaust the host's inodes"
        else:
            landed = ("the files did not show up as used inodes on the host's %s (ratio %s)"
                      % (where, _ratio_text(ratio)))
            follows = "the container's inodes are separate from the host's"
            own = _own_fs_words(m)
            if own:
                landed += "; %s" % own
        if reason == "enospc":
            return "%s after %s files: %s, and %s: %s" % (stopped, got, landed, effect, follows)
        return ("%s%s: %s; %s; no container limit applied: %s"
                % (stopped, " files" if at_cap else " after %s files" % got, landed, effect,
                   follows))
    if resource == "memory":
        got = fmt_bytes(m.get("resident_bytes"))
        effect = _host_effect(m, ("host_alloc",))
        floor_note = "host MemAvailable stayed above %s" % fmt_bytes(
            m.get("host_mem_available_min"))
        swap = _swap_note(m)
        if reason == "container-limit":
            return ("contained: the container was OOM-killed at its %s limit (peak %s); %s and "
                    "%s%s" % (fmt_bytes(m.get("memory_limit_bytes")), got, floor_note, effect,
                              swap))
        if reason == "oom-kill":
            victim = m.get("oom_victim")
            who = {"container": "only the container was killed",
                   "container+host": "the kernel also killed %s other process(es) (%s)" % (
                       m.get("oom_kills_other"), m.get("oom_other_victims") or "unnamed"),
                   "host": "a host process was killed (%s)" % (
                       m.get("oom_other_victims") or "unnamed")}.get(victim, victim)
            return ("the host ran out of memory: the container was OOM-killed after %s with no "
                    "memory limit; %s; %s: a container can exhaust the host's memory"
                    % (got, who, effect))
        if m.get("memory_limit_bytes"):
            return ("%s with %s resident under a %s limit; %s; %s%s" % (
                stopped, got, fmt_bytes(m.get("memory_limit_bytes")), floor_note, effect, swap))
        return ("%s with %s resident and no memory limit: host MemAvailable fell by %s (ratio "
                "%s); %s; nothing in the container stopped it: a container can use up the "
                "host's memory" % (stopped, got, fmt_bytes(m.get("host_mem_available_delta")),
                                   _ratio_text(m.get("landed_on_host_ratio")), effect))
    # processes
    got = fmt_count(m.get("processes_started"))
    effect = _host_effect(m, ("host_fork",))
    if reason == "container-limit":
        return ("contained: the container stopped at its --pids-limit of %s (EAGAIN after %s "
                "children, %s pids in the container); %s" % (
                    fmt_count(m.get("pids_limit")), got,
                    fmt_count(m.get("container_pids_peak")), effect))
    if m.get("host_procs_delta") is not None:
        rose = ("the host saw %s more processes at the container's peak for %s in the "
                "container (ratio %s; kernel-wide threads rose by %s)"
                % (fmt_count(m.get("host_procs_delta")), fmt_count(m.get("ratio_denominator")),
                   _ratio_text(m.get("landed_on_host_ratio")),
                   fmt_count(m.get("host_threads_delta"))))
    else:
        rose = ("the host's thread count rose by %s (ratio %s)"
                % (fmt_count(m.get("host_threads_delta")),
                   _ratio_text(m.get("landed_on_host_ratio"))))
    if reason == "eagain":
        return ("%s after %s children: the host's process limit was reached (%s free pids at "
                "the peak); %s; %s: a container can exhaust the host's processes"
                % (stopped, got, fmt_count(m.get("host_free_pids_min")), rose, effect))
    return ("%s%s with no pids limit: %s; %s; nothing in the container stopped it: a "
            "container can exhaust the host's process table (pid_max %s, threads-max %s)"
            % (stopped, " children" if at_cap else " after %s children" % got, rose, effect,
               fmt_count(m.get("host_pid_max")), fmt_count(m.get("host_threads_max"))))


# ---------------------------------------------------------------------------
# the study's resource checks: the experiments
# ---------------------------------------------------------------------------

PROBE_TOOLS_RESOURCES = PROBE_TOOLS_ALL
BIG_COUNT = 2000000000  # "no cap" for the shell loops (fits every shell's arithmetic)
FREE_KEY = {"disk": "free_bytes", "inodes": "free_inodes", "memory": "mem_available",
            "processes": "free_pids"}
SERIES_KEYS = {"disk": ("free_bytes", "free_bytes_root"), "inodes": ("free_inodes", "free_bytes"),
               "memory": ("mem_available", "swap_free"),
               "processes": ("threads", "procs", "free_pids")}
STATE_FILE = "/dev/labctl-state"   # the container's /dev is a tmpfs: writable even when the
COUNT_FILE = "/dev/labctl-count"   # disk is full; the host reads it via /proc/PID/root
SOAK_FILE = "/dev/labctl-soak"     # processes, exhaust mode: the fork retry loop
LOW_FREE_PIDS = 64  # fewer free pids at the peak: stop the container by a signal, not the engine


class SkipExperiment(Exception):
    def __init__(self, message):
        Exception.__init__(self, message)
        self.msg = message


def container_script(name, amount, sleep_s, soak_s=0):
    """The POSIX shell script (dash, bash as sh, busybox ash) a resource container runs.

    ``amount`` is the cap it is given (bytes, files, processes) or None for no cap.  Each
    script ends by writing STATE_FILE and exec'ing sleep, so the container stays at its peak
    (without forking) until the agent has checked the host and killed it.

    processes: the forking shell holds its peak through an EXIT trap: when a fork fails the
    shell exits, and the trap exec's sleep (exec keeps the pid: nothing is given back).  With
    ``soak_s`` (exhaust mode) the trap exec's a retry loop instead, as a fork bomb does: any
    pid the host frees is taken again, for ``soak_s`` seconds, then it holds with sleep.
    """
    resource = RESOURCE_OF[name]
    hold = "echo done > %s; exec sleep %d" % (STATE_FILE, sleep_s)
    if resource == "disk":
        target = "/shared/fill" if name == "disk-shared" else "/fill"
        count = "" if amount is None else " count=%d" % (int(amount) // MIB)
        return ("dd if=/dev/zero of=%s bs=1M%s; r=$?; echo \"labctl-rc $r\"; %s"
                % (target, count, hold))
    if resource == "inodes":
        n = BIG_COUNT if amount is None else int(amount)
        return ("mkdir /fill || exit 1; i=0; d=0; j=0; "
                "while [ $i -lt %d ]; do "
                "if [ $((i %% 1000)) -eq 0 ]; then p=/fill/d$d; mkdir $p || break; "
                "d=$((d+1)); fi; "
                "k=$((%d - i)); if [ $k -gt 100 ]; then k=100; fi; j=0; "
                "while [ $j -lt $k ]; do true > $p/f$i-$j || break 2; j=$((j+1)); done; "
                "i=$((i+j)); j=0; echo $i > %s; "
                "done; i=$((i+j)); "  # a broken inner loop left its j files uncounted
                "echo $i > %s; echo \"labctl-count $i dirs $d\"; %s"
                % (n, n, COUNT_FILE, COUNT_FILE, hold))
    if resource == "memory":
        # killed (by the OOM killer): the shell stays a second, so the container's memory
        # cgroup, and its peak, outlive the kill long enough for the agent to read them
        linger = "r=$?; echo \"labctl-rc $r\"; if [ $r -ne 0 ]; then sleep 1; fi; exit $r"
        if amount is None:
            return "tail /dev/zero; " + linger
        return ("(head -c %d /dev/zero && echo held > %s && exec sleep %d) | tail; %s"
                % (int(amount), STATE_FILE, sleep_s, linger))
    n = BIG_COUNT if amount is None else int(amount)
    script = ""
    keep = "exec sleep @S@"
    if soak_s:
        # the retry loop lives in a file on the container's /dev (a tmpfs); each failed fork
        # ends that shell, whose EXIT trap exec's it again (same pid), until the soak ends
        soak = ("i=$1; trap 'exec sh @K@ $i 2>/dev/null' EXIT; read up rest < /proc/uptime; "
                "if [ ${up%%.*} -ge @END@ ]; then exec sleep @S@; fi; "
                "while :; do sleep @S@ & i=$((i+1)); echo $i > @C@; done")
        soak = soak.replace("$", "\\$").replace("@END@", "$end")  # written, not run, here
        script = ("read up rest < /proc/uptime; end=$((${up%%.*} + @T@)); "
                  "echo \"" + soak + "\" > @K@; ")
        keep = "if [ $r -ne 0 ]; then exec sh @K@ $i 2>/dev/null; fi; exec sleep @S@"
    script += ("i=0; trap 'r=$?; echo $i > @C@; echo \"labctl-count $i\"; "
               "echo \"labctl-rc $r\"; echo done > @D@; %s' EXIT; "
               "while [ $i -lt @N@ ]; do sleep @S@ & i=$((i+1)); echo $i > @C@; done; exit 0"
               % keep)
    for token, value in (("@C@", COUNT_FILE), ("@D@", STATE_FILE), ("@K@", SOAK_FILE),
                         ("@S@", str(int(sleep_s))), ("@N@", str(n)),
                         ("@T@", str(int(soak_s)))):
        script = script.replace(token, value)
    return script


def parse_container_log(text):
    """What the container's own output says: {'rc', 'count', 'dirs', 'dd_bytes', 'error'}."""
    out = {"rc": None, "count": None, "dirs": None, "dd_bytes": None, "dd_seconds": None,
           "error_line": None}
    for line in (text or "").splitlines():
        line = line.strip()
        m = re.match(r"^labctl-rc (\d+)", line)
        if m:
            out["rc"] = int(m.group(1))
            continue
        m = re.match(r"^labctl-count (\d+)(?: dirs (\d+))?", line)
        if m:
            out["count"] = int(m.group(1))
            if m.group(2):
                out["dirs"] = int(m.group(2))
            continue
        m = re.match(r"^(\d+) bytes", line)
        if m:
            out["dd_bytes"] = int(m.group(1))
            t = re.search(r"copied,\s*([0-9.]+) s", line)
            if t:
                out["dd_seconds"] = float(t.group(1))
            continue
        if out["error_line"] is None and classify_container_error(line):
            out["error_line"] = one_line(line, 200)
    out["error"] = classify_container_error(text)
    return out


def _stat_size(path):
    try:
        return os.stat(path).st_size
    except (OSError, TypeError):
        return None


def _container_alive(pid):
    if not pid:
        return False
    stat = read_text("/proc/%d/stat" % pid, 512)
    if stat is None:
        return False
    fields = stat.rsplit(")", 1)[-1].split()
    return not (fields and fields[0] in ("Z", "X"))


def _dmesg():
    path = which("dmesg") or find_tool("dmesg")
    if not path:
        return None
    res = run_cmd([path], timeout=15)
    return res.out if res.ok else None


class ResourceRun(object):
    """One resource experiment: start the container, sample the host, stop at the peak."""

    def __init__(self, agent, name, metrics):
        self.agent = agent
        self.name = name
        self.resource = RESOURCE_OF[name]
        self.m = metrics
        self.limits = agent.limits()
        self.series = {"t": [], "container": []}
        for k in SERIES_KEYS[self.resource]:
            self.series[k] = []
        self.samples = []
        self.pid = None
        self.cg_dir = None
        self.cg_version = None
        self.cstate_path = None
        self.peak_container = None
        self.peak_sample = None   # the last sample before the host's own checks
        self.pid_start = None     # /proc/PID/stat start time of the container's first process
        self.cg_view_path = None  # the container's cgroup as this host names it
        self.cg_mount_root = None  # the part of the cgroup tree this host sees
        self.fsdir = None
        self.root_fs = None       # the docker root's filesystem: waited on after the run
        self.root_base = None
        self.sampler = None
        self.cleaned = False
        self.storage_opt_size = None  # disk-limited: --storage-opt size= (engine took it)
        self.writer = None        # disk: dd's pid (the writer whose own counter is read)

    # -- per-container limits: disk size, swap ------------------------------------
    def try_storage_opt(self, size):
        """Ask the engine for a container of the probe image with --storage-opt size=
        (created, never started, removed at once): ("ok", "") or ("failed", stderr)."""
        agent = self.agent
        cname = agent.container_name(self.name + "-sizeopt")
        args = ["create", "--name", cname]
        if agent.docker.supports((1, 6)):
            args += ["--label", "labctl.run=%s" % agent.run_id]
        args += ["--storage-opt", "size=%d" % int(size), self.m["probe_image"], "/bin/sh", "-c",
                 "true"]
        agent.containers.append(cname)
        try:
            res = agent.docker_cmd(args, 60)
        finally:
            if not agent.remove_container(cname) and cname in agent.containers and \
                    not inspect_state(agent.docker, cname):
                agent.containers.remove(cname)  # refused: nothing was made
        if res.ok:
            return "ok", ""
        if res.timed_out or res.missing:
            return "failed", res.describe()
        return "failed", (res.err or "") + "\n" + (res.out or "")

    def disk_limit(self, dfacts, server, fstype):
        """disk, disk-limited: the limit in effect, into the metrics; raises SkipExperiment
        (disk-limited, where the engine has no per-container size) or ExperimentError."""
        m, name = self.m, self.name
        driver = dfacts.get("storage_driver")
        requested = int(self.limits["disk_limit_bytes"])
        status = dfacts.get("driver_status")
        argv = docker_daemon_argv(dfacts.get("daemon_pid")) if (
            driver == "devicemapper" and not base_device_size(driver, status)) else None
        base, m["base_device_size_source"] = dm_base_size(driver, status, argv)
        m["base_device_size_bytes"] = base
        plan = disk_limit_plan(name, driver, server, requested, base, None, fstype)
        if plan["try_opt"]:
            probe = self.try_storage_opt(requested)
            plan = disk_limit_plan(name, driver, server, requested, base, probe, fstype)
        if name == "disk-limited":
            m["disk_limit_requested_bytes"] = requested
            m["storage_opt_size"] = "supported" if plan["storage_opt"] else (
                "refused" if plan["refusal"] else ("error" if plan["error"] else "not-tried"))
            m["storage_opt_refusal"] = plan["refusal"]
            m["storage_opt_error"] = plan["message"]
        m["disk_limit_bytes"] = plan["limit"]
        m["disk_limit_source"] = plan["source"]
        m["limit_applied"] = bool(plan["limit"])
        if plan["error"]:
            raise ExperimentError("docker-create", "could not create a container with "
                                  "--storage-opt size=%d (%s)" % (requested, plan["error"]))
        if plan["skip"]:
            raise SkipExperiment(plan["skip"])
        self.storage_opt_size = requested if plan["storage_opt"] else None

    def swap_applied(self, insp):
        """memory-limited: was --memory-swap applied (the container's cgroup, the engine's
        stored HostConfig, its warnings)?  Into the metrics."""
        m = self.m
        requested = m.get("memory_swap_limit_bytes")
        cg_val = None
        if requested and self.cg_dir and os.path.isdir(self.cg_dir):
            fname = "memory.memsw.limit_in_bytes" if self.cg_version == 1 else \
                "memory.swap.max"
            path = os.path.join(self.cg_dir, fname)
            cg_val = (read_text(path, 64) or "").strip() if os.path.exists(path) else ""
            if not os.path.isdir(self.cg_dir):
                cg_val = None  # the container (and its cgroup) went meanwhile
        host_cfg = insp.get("HostConfig") or {}
        stored = host_cfg.get("MemorySwap")
        if stored is None:  # Docker before 1.6 keeps Memory and MemorySwap in Config
            stored = (insp.get("Config") or {}).get("MemorySwap")
        m["engine_memory_swap_stored"] = stored
        m["engine_run_warning"] = one_line(" ".join(
            [ln.strip() for ln in (self.agent.last_run_err or "").splitlines()
             if "warning" in ln.lower() or "limitation discarded" in ln.lower()]), 300) or None
        applied, source = swap_limit_applied(requested, self.agent.last_run_err,
                                             m.get("engine_swap_limit_warning"), cg_val,
                                             self.cg_version, stored)
        m["memory_swap_limit_applied"] = applied
        m["memory_swap_limit_source"] = source

    # -- devicemapper: the container's own thin device, the pool file on the host ---------
    def thin_pool_setup(self, dfacts, target, mounts):
        """devicemapper loop-lvm: sample the thin pool's sparse data file (its allocated
        bytes) and the filesystem that holds it; the pool's own data space (engine)."""
        m = self.m
        pool = dm_pool_file(dfacts.get("storage_driver"), dfacts.get("driver_status"),
                            root_dir=dfacts.get("root_dir"))
        if dfacts.get("storage_driver") == "devicemapper":
            m["pool_data_file"] = pool
        if not pool or not os.path.exists(pool):
            return
        self.sampler.pool_file = pool
        try:
            same = os.stat(pool).st_dev == os.stat(target).st_dev
        except (OSError, TypeError):
            same = None
        if same is False:
            self.sampler.pool_fs = os.path.dirname(pool)
        pm = find_mount(mounts, os.path.realpath(pool))
        m.update({"pool_file_on_target_fs": same, "pool_file_fstype": pm and pm["fstype"],
                  "pool_file_size_bytes": _stat_size(pool)})
        self.pool_space("before")

    def pool_space(self, when):
        """The thin pool's data space as the engine reports it (GET /info over its socket: no
        fork); into pool_data_space_used_<when> etc."""
        if not self.m.get("pool_data_file") and \
                self.m.get("storage_driver") != "devicemapper":
            return
        try:
            status, body = engine_request("GET", "/info", 10)
            info = json.loads(body) if status == 200 else {}
        except (socket.error, OSError, ValueError):
            info = {}
        pairs = info.get("DriverStatus") if isinstance(info, dict) else None
        ds = dict((p[0], p[1]) for p in (pairs or []) if isinstance(p, list) and len(p) == 2)
        used, total, avail = dm_pool_space(ds)
        self.m["pool_data_space_used_%s_bytes" % when] = used
        if when == "before":
            self.m["pool_data_space_total_bytes"] = total
            self.m["pool_data_space_available_before_bytes"] = avail

    def container_fs(self, when, s0=None):
        """The container's own / as the host sees it (/proc/PID/root): its size and inodes;
        on devicemapper its own ext4 on its thin device, not the host's filesystem."""
        m = self.m
        try:
            st = os.statvfs(self._cproc("/"))
        except (OSError, TypeError, AttributeError):
            return
        frsize = st.f_frsize or st.f_bsize
        m["container_fs_free_bytes_%s" % when] = st.f_bfree * frsize
        m["container_fs_free_inodes_%s" % when] = st.f_ffree
        if when != "start":
            return
        m["container_fs_size_bytes"] = st.f_blocks * frsize
        m["container_fs_inodes_total"] = st.f_files
        if s0 is not None and s0.get("size_bytes") is not None:
            m["container_fs_own"] = (st.f_blocks * frsize, st.f_files) != (
                s0["size_bytes"], s0["inodes_total"])
        base = m.get("base_device_size_bytes")
        if m.get("pool_data_file") or base:
            free = s0.get("pool_fs_free_bytes") if s0 and s0.get("pool_fs_free_bytes") \
                is not None else (s0 or {}).get("free_bytes_root")
            avail = m.get("pool_data_space_available_before_bytes")
            if avail is None and m.get("pool_data_space_total_bytes") and \
                    m.get("pool_data_space_used_before_bytes") is not None:
                avail = m["pool_data_space_total_bytes"] - m["pool_data_space_used_before_bytes"]
            over, room = thin_pool_overcommit(base or m["container_fs_size_bytes"], free, avail)
            m["thin_pool_overcommitted"] = over
            m["thin_pool_room_bytes"] = room
            m["thin_pool_host_free_bytes"] = free

    # -- where ----------------------------------------------------------------
    def same_fs_dir(self, root):
        """A per-run folder on the filesystem that holds the docker root, for the shared
        folder and the host's own checks: the agent's run folder when it is on that
        filesystem, else <root>/../labctl-probe-<run>-fs, else <root>/labctl-probe-<run>-fs
        (the only place on a docker root that is a mount of its own).  Registered for
        cleanup; returns (path, on_docker_root_fs or None when unknown)."""
        agent = self.agent
        try:
            root_dev = os.stat(root).st_dev
        except (OSError, TypeError):
            root_dev = None
        cands = [(os.path.join(agent.run_dir, "fs-" + self.name), None)]
        if root:
            top_name = "%s%s-fs" % (NAME_PREFIX, agent.run_id)
            for parent in (os.path.dirname(root.rstrip("/")), root):
                top = os.path.join(parent, top_name)
                cands.append((os.path.join(top, self.name), top))
        for path, top in cands:
            try:
                if not os.path.isdir(path):
                    os.makedirs(path)
            except OSError:
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
        if not os.path.isdir(path):
            os.makedirs(path)
        return path, False

    # -- reading the container from the host ------------------------------------
    def _cproc(self, rel):
        if not self.pid:
            return None
        return "/proc/%d/root%s" % (self.pid, rel)

    def container_progress(self):
        """The container's progress as the host sees it: bytes written, files, resident
        bytes, processes (None when it cannot be read)."""
        r = self.resource
        if r == "disk":
            if self.name == "disk-shared":
                return _stat_size(os.path.join(self.shared_dir, "fill"))
            return _stat_size(self._cproc("/fill"))
        if r == "inodes":
            return to_int(read_text(self._cproc(COUNT_FILE) or "", 32))
        if r == "memory":
            if self.cg_dir:
                return _read_cg_number(os.path.join(
                    self.cg_dir, "memory.usage_in_bytes" if self.cg_version == 1
                    else "memory.current"))
            return None
        if self.cg_dir:
            v = _read_cg_number(os.path.join(self.cg_dir, "pids.current"))
            if v is not None:
                return v
        return to_int(read_text(self._cproc(COUNT_FILE) or "", 32))

    def writer_info(self):
        """The writing process: dd under the container's shell (disk), else the container's
        first process -> {'pid', 'name', 'state'}, or None when it is gone."""
        pid = self.writer_pid()
        f = parse_proc_stat_fields(read_text("/proc/%d/stat" % pid, 512)) if pid else None
        if not f or f[1] in ("Z", "X"):
            return None
        return {"pid": pid, "name": f[0], "state": f[1]}

    def writer_pid(self):
        if not self.pid:
            return None
        if self.resource != "disk":
            return self.pid
        if self.writer is None or not _container_alive(self.writer):
            self.writer = find_child(self.pid, "dd")
        return self.writer

    def writer_counter(self):
        """disk: the bytes dd handed to write() (/proc/PID/io wchar), its own progress
        counter, which moves even while the file's size waits for the page cache."""
        if self.resource != "disk" or not self.pid:
            return None
        pid = self.writer_pid()
        if not pid:
            return None
        return parse_proc_io(read_text("/proc/%d/io" % pid, 1024)).get("wchar")

    def take_sample(self, sampler, start):
        s = sampler.sample()
        s["container"] = self.container_progress()
        self.samples.append(s)
        self.series["t"].append(round(s["t"] - start, 3))
        self.series["container"].append(s["container"])
        for k in SERIES_KEYS[self.resource]:
            self.series[k].append(s[k])
        if s["container"] is not None and (self.peak_container is None
                                           or s["container"] > self.peak_container):
            self.peak_container = s["container"]
        if self.resource == "memory":
            self._cgroup_peak()
        return s

    # -- the run ----------------------------------------------------------------
    def run(self):
        agent, m, lim, name, resource = self.agent, self.m, self.limits, self.name, \
            self.resource
        facts = agent.facts or {}
        dfacts = facts.get("docker") or {}
        root = dfacts.get("root_dir")
        server = agent.docker.server_version
        if name == "processes-limited":
            ok, why = pids_gate(server, (facts.get("cgroup") or {}).get("controllers"))
            if not ok:
                # a finding, not a skip: this engine (or kernel) has no per-container process
                # limit, so only the host's own limits stop a container's processes
                m.update({"mode": agent.mode, "pids_limit": lim["pids_limit"],
                          "limit_applied": False, "limit_available": False,
                          "limit_unavailable_reason": why, "docker_server_version": server,
                          "stop_reason": "not-available", "container_started": False,
                          "host_pid_max": _read_int("/proc/sys/kernel/pid_max"),
                          "host_threads_max": _read_int("/proc/sys/kernel/threads-max")})
                return pids_unavailable_verdict(server, why, m)
        if not os.path.isdir(agent.run_dir):
            os.makedirs(agent.run_dir)
        fsdir, on_root = self.same_fs_dir(root)
        self.fsdir = fsdir
        self.shared_dir = None
        target = root if (root and os.path.isdir(root)) else fsdir
        if name == "disk-shared":
            self.shared_dir = os.path.join(fsdir, "shared")
            if not os.path.isdir(self.shared_dir):
                os.makedirs(self.shared_dir)
            os.chmod(self.shared_dir, 0o777)
            target = self.shared_dir
        mounts = parse_mountinfo(read_text("/proc/self/mountinfo")) or \
            parse_proc_mounts(read_text("/proc/mounts"))
        tm = find_mount(mounts, os.path.realpath(target)) if target else None
        m.update({"mode": agent.mode, "docker_server_version": server,
                  "storage_driver": dfacts.get("storage_driver"),
                  "target_path": target, "target_fstype": tm and tm["fstype"],
                  "target_device": tm and tm["source"],
                  "hostcheck_dir_on_docker_root_fs": on_root,
                  "experiment_timeout_s": lim["experiment_timeout_s"],
                  "sample_interval_s": lim["sample_interval_s"],
                  "container_started": False, "killed_by_agent": False, "kill_method": None})
        if self.shared_dir:
            sm = find_mount(mounts, os.path.realpath(self.shared_dir))
            m["shared_dir"] = self.shared_dir
            m["shared_dir_fstype"] = sm and sm["fstype"]
            m["shared_dir_on_docker_root_fs"] = on_root
        sampler = self.sampler = HostSampler(target)
        self.root_fs = root if (root and os.path.isdir(root)) else fsdir
        self.root_base = fs_free(self.root_fs)
        m.update({"host_pid_max": sampler.pid_max, "host_threads_max": sampler.threads_max,
                  "host_pids_cgroup_limit": sampler.cg.get("pids_limit"),
                  "host_memory_cgroup_limit_bytes": sampler.cg.get("memory_limit")})
        if resource in ("disk", "inodes"):
            self.thin_pool_setup(dfacts, target, mounts)
        m.update(agent.probe_image())
        if name in ("disk", "disk-limited"):
            # the per-container limit in effect: --storage-opt size= where the engine takes
            # it (disk-limited, tried first), devicemapper's base device size (both)
            self.disk_limit(dfacts, server, tm and tm["fstype"])
        if resource == "memory":
            m["engine_swap_limit_warning"] = dfacts.get("swap_limit_warning")
            m["host_swap_total_bytes"] = parse_meminfo(read_text("/proc/meminfo")).get(
                "SwapTotal")
        if resource in ("disk", "inodes") and agent.mode == "bounded":
            # settle what earlier experiments freed (ext4 returns freed blocks at the journal
            # commit), so the baseline is not moved by our own past
            sync = find_tool("sync")
            if sync:
                run_cmd([sync], timeout=agent.deadline.remaining(30))
        start = time.time()
        s0 = self.take_sample(sampler, start)
        free_key = FREE_KEY[resource]
        free0 = s0[free_key]
        total = {"disk": s0["size_bytes"], "inodes": s0["inodes_total"],
                 "memory": None, "processes": sampler.pids_total()}[resource]
        if resource == "memory":
            meminfo = parse_meminfo(read_text("/proc/meminfo"))
            total = meminfo.get("MemTotal")
            if sampler.cg.get("memory_limit"):
                total = min(total or sampler.cg["memory_limit"], sampler.cg["memory_limit"])
            m["host_mem_available_source"] = sampler.mem_source
        cap, floor = cap_and_floor(resource, agent.mode, agent.limit_overrides, free0, total)
        if name == "disk-limited":  # past the limit if it does not hold, still bounded
            cap = disk_limited_cap(cap, m.get("disk_limit_bytes"))
        if resource == "inodes" and not s0["inodes_total"]:
            floor = 0  # no fixed inode count (btrfs): nothing to run out of
        amount, by_floor = cap_within_floor(cap, floor, free0)
        floors = {free_key: floor}
        if resource == "inodes":  # creating files also takes a little disk space
            floors["free_bytes"] = cap_and_floor("disk", agent.mode, agent.limit_overrides,
                                                 s0["free_bytes"], s0["size_bytes"])[1]
        m.update({_CAP_KEYS[resource]: cap, _FLOOR_KEYS[resource]: floor, "cap": cap,
                  "floor": floor, "cap_effective": amount, "cap_limited_by_floor": by_floor})
        if name == "memory-limited":
            m["memory_limit_bytes"] = lim["memory_limit_bytes"]
        if name == "processes-limited":
            m["pids_limit"] = lim["pids_limit"]
        self._before(s0)
        minimum = MIB if resource in ("disk",) else 1
        for key, fl in sorted(floors.items()):  # any floor already reached: do not start
            if key != free_key and floor_breached(s0[key], fl, 0, 0):
                amount, by_floor = 0, True
                m["cap_effective"], m["cap_limited_by_floor"] = 0, True
                m.update({"floor_tripped": key, "floor_tripped_value": s0[key],
                          "floor_tripped_at": fl})
        if amount is not None and amount < minimum:
            m["stop_reason"] = "floor" if by_floor else "cap"
            self._zero_progress()
            self.finish(s0, start)
            return resource_verdict(name, m)
        # memory: baseline for OOM attribution
        vm0 = parse_vmstat(read_text("/proc/vmstat")).get("oom_kill")
        dmesg0 = _dmesg() if (resource == "memory" or m.get("pool_data_file")) else None
        sleep_s = int(lim["experiment_timeout_s"]) + 60
        args, applied = resource_run_options(name, server, lim, selinux_enforcing(),
                                             self.shared_dir, self.storage_opt_size)
        for key, value in applied.items():
            if value is not None:
                m[key] = value
        m["limit_applied"] = bool(applied["memory_limit_bytes"] or applied["pids_limit"]
                                  or m.get("disk_limit_bytes"))
        soak_s = int(lim["experiment_timeout_s"]) if agent.mode == "exhaust" else 0
        script = container_script(name, amount, sleep_s, soak_s)
        cname, cid = agent.start_container(name, m["probe_image"],
                                           ["/bin/sh", "-c", script], args)
        m["container_started"] = True
        m["container_name"] = cname
        run_start = time.time()
        insp = inspect_state(agent.docker, cname)
        self.pid = to_int((insp.get("State") or {}).get("Pid")) or None
        m["container_id"] = (insp.get("Id") or cid or "")[:12] or None
        if self.pid:
            self.pid_start = _proc_start_time(self.pid)
            cg_ctrl = "memory" if resource == "memory" else "pids"
            proc_cg = parse_proc_cgroup(read_text("/proc/%d/cgroup" % self.pid))
            cg_mounts = parse_cgroup_mounts(read_text("/proc/self/mountinfo"))
            self.cg_dir, self.cg_version = cgroup_dir(proc_cg, cg_mounts, cg_ctrl)
            if self.cg_dir and not os.path.isdir(self.cg_dir):
                self.cg_dir = None
            self.cg_view_path, self.cg_mount_root = cgroup_view(proc_cg, cg_mounts, cg_ctrl)
            if self.cg_dir and not own_cgroup(self.cg_dir, m["container_id"]):
                # Docker 1.5.0 makes no pids cgroup: the container sits in the daemon's (with
                # the agent's ssh session, say); its count is not the container's, and it
                # never empties (wait_gone would wait its full time)
                if resource in ("memory", "processes"):
                    m["container_%s_cgroup_own" % cg_ctrl] = False
                    m["container_%s_cgroup" % cg_ctrl] = self.cg_view_path
                self.cg_dir = None
        if name == "memory-limited":
            self.swap_applied(insp)
        if resource in ("disk", "inodes") and self.pid:
            self.container_fs("start", s0)
        cpu0, w0 = self_cpu_seconds(), time.time()
        stop = self.watch(sampler, start, floors, cname)
        cpu1, w1 = self_cpu_seconds(), time.time()
        m["watch_s"] = round(w1 - run_start, 3)   # container start -> its peak seen
        m["agent_watch_cpu_s"] = round(cpu1 - cpu0, 3) if (
            cpu0 is not None and cpu1 is not None) else None
        m["agent_watch_cpu_fraction"] = round((cpu1 - cpu0) / (w1 - w0), 4) if (
            cpu0 is not None and cpu1 is not None and w1 > w0) else None
        m["agent_maxrss_bytes"] = self_maxrss_bytes()
        peak = self.peak_sample = self.samples[-1]
        # at the peak (the container still running): the host tries the same thing
        log = {}
        if stop != "exited" and _container_alive(self.pid):
            if resource == "memory":
                time.sleep(min(0.3, lim["sample_interval_s"] * 3))
                peak = self.peak_sample = self.take_sample(sampler, start)
                self._cgroup_peak()
            cnt = to_int(read_text(self._cproc(COUNT_FILE) or "", 32))
            if cnt is not None:
                log["count_live"] = cnt
            if resource == "disk" and self.name in ("disk", "disk-limited"):
                log["size_live"] = _stat_size(self._cproc("/fill"))
            m["host_check_at"] = "peak"
            if resource in ("disk", "inodes"):
                self.container_fs("at_peak")
                self.pool_space("at_peak")
            m.update(host_checks(resource, fsdir, lim))
            # the host has (almost) no pids left: the engine would have to fork runc to stop
            # the container, so the agent signals the container's first process itself
            low_pids = peak.get("free_pids") is not None and peak["free_pids"] < LOW_FREE_PIDS
            method = kill_container(agent.docker, cname, 10, self.pid, self.pid_start,
                                    prefer_signal=low_pids)
            m["killed_by_agent"] = method is not None
            m["kill_method"] = method
            self.wait_gone(10)
        else:
            m["host_check_at"] = "after-exit"
            m.update(host_checks(resource, fsdir, lim))
        m["run_s"] = round(time.time() - run_start, 3)
        m["agent_stop"] = stop if stop in ("floor", "timeout", "stall") else None
        after = self.take_sample(sampler, start)
        insp = inspect_state(agent.docker, cname)
        end = time.time() + 10   # the engine may not have seen the exit yet
        while (insp.get("State") or {}).get("Running") and time.time() < end:
            time.sleep(0.1)
            insp = inspect_state(agent.docker, cname) or insp
        st = insp.get("State") or {}
        m["container_exit_code"] = to_int(st.get("ExitCode"))
        if m["container_exit_code"] == 137 and not m["killed_by_agent"] and \
                not st.get("OOMKilled"):
            time.sleep(0.5)  # the engine may handle the OOM event after the exit event
            st = inspect_state(agent.docker, cname).get("State") or st
        m["oom_killed_docker"] = bool(st.get("OOMKilled"))
        m["oom_killed"] = m["oom_killed_docker"]
        res = agent.docker.run(["logs", "--tail", "60", cname], 30)
        parsed = parse_container_log((res.out or "") + "\n" + (res.err or ""))
        m["container_error"] = parsed["error"]
        m["container_error_line"] = parsed["error_line"]
        m["script_rc"] = parsed["rc"]
        self._progress_metrics(parsed, log, peak)
        if resource == "memory":
            vm1 = parse_vmstat(read_text("/proc/vmstat")).get("oom_kill")
            m["vmstat_oom_kill_before"] = vm0
            m["vmstat_oom_kill_after"] = vm1
            m["vmstat_oom_kill_delta"] = (vm1 - vm0) if (vm0 is not None and vm1 is not None) \
                else None
            dmesg1 = _dmesg() if dmesg0 is not None else None
            m["kernel_log_readable"] = dmesg1 is not None
            lines = kernel_oom_lines(dmesg0, dmesg1) if dmesg1 is not None else []
            m["oom_kernel_lines"] = len(lines)
            m["oom_kernel_line"] = one_line(lines[-1], 300) if lines else None
            # the engine's flag can miss a kill (it races the exit): the kernel's word counts
            if not m["oom_killed"] and m["container_exit_code"] == 137 and \
                    not m["killed_by_agent"]:
                cid12 = (insp.get("Id") or "")[:12]
                memcg = [ln for ln in lines if "memory cgroup out of memory" in ln.lower()
                         or (cid12 and cid12 in ln)]
                if memcg or (m["vmstat_oom_kill_delta"] or 0) >= 1:
                    m["oom_killed"] = True
            rss = oom_line_rss(lines)
            if rss and m.get("oom_killed") and rss > (m.get("resident_bytes") or 0):
                m["resident_bytes"], m["resident_source"] = rss, "kernel-oom-line"
            scope = oom_host_scope(self.cg_view_path, self.cg_mount_root, lines,
                                   insp.get("Id"))
            m["oom_host_cgroup"] = scope
            m.update(attribute_oom(m["oom_killed"], m["container_exit_code"],
                                   m["killed_by_agent"], m["vmstat_oom_kill_delta"], lines,
                                   insp.get("Id"), scope))
        if resource in ("disk", "inodes") and dmesg0 is not None:
            # devicemapper: what the kernel said about the thin pool (out of space, read-only)
            lines = thin_pool_kernel_lines(dmesg0, _dmesg())
            m["thin_pool_kernel_lines"] = len(lines)
            m["thin_pool_kernel_line"] = one_line(lines[-1], 300) if lines else None
            m["thin_pool_read_only"] = bool([ln for ln in lines if "read-only" in ln.lower()
                                             or "read_only" in ln.lower()])
        # the container's own limit reached?
        near = False
        if name == "memory-limited" and m.get("resident_bytes"):
            near = m["resident_bytes"] >= 0.85 * lim["memory_limit_bytes"]
        if name == "processes-limited":
            peak_p = m.get("container_pids_peak") or 0
            near = peak_p >= lim["pids_limit"] - 2 or \
                (m.get("processes_started") or 0) + 3 >= lim["pids_limit"]
        room = None
        if resource == "disk":
            # ENOSPC with room left on the host: the container's own limit (near it, or no
            # limit known); a known limit far from reached: not the limit
            dl, w = m.get("disk_limit_bytes"), m.get("written_bytes")
            near = (w >= 0.5 * dl) if (dl and w is not None) else None
            room = host_had_room(w, self._min("free_bytes_root"), dl)
            m["host_had_room"] = room
        reached = False
        if amount is not None:
            got = {"disk": m.get("written_bytes"), "inodes": m.get("files_created"),
                   "memory": m.get("resident_bytes"),
                   "processes": m.get("processes_started")}[resource]
            if resource == "memory":
                reached = stop == "done" or (got is not None and got >= 0.9 * amount)
            elif got is not None:
                want = (int(amount) // MIB) * MIB if resource == "disk" else amount
                reached = got >= want
        exhausted = False
        if resource == "disk":
            # ext4 keeps a few MiB even from root (seen: 16 MiB "free" while root's own write
            # failed): the host's write failing with ENOSPC at the peak is the proof
            exhausted = (self._min("free_bytes_root") or 0) < 8 * MIB or (
                m.get("host_write_ok") is False and
                "ENOSPC" in (m.get("host_write_error") or ""))
        elif resource == "inodes":
            # out of inodes, or out of the blocks new directory entries need
            exhausted = (s0["inodes_total"] and (self._min("free_inodes") or 0) < 16) or \
                (self._min("free_bytes_root") is not None and self._min("free_bytes_root") < MIB)
        elif resource == "processes":
            exhausted = (self._min("free_pids") or 0) < 4
        m["host_exhausted"] = bool(exhausted)
        m["stop_reason"] = decide_stop_reason({
            "resource": resource, "agent_stop": m["agent_stop"], "reached_target": reached,
            "cap_limited_by_floor": by_floor, "container_error": m["container_error"],
            "oom_killed": m["oom_killed"], "exit_code": m["container_exit_code"],
            "killed_by_agent": m["killed_by_agent"], "limit_applied": m["limit_applied"],
            "near_limit": near, "host_exhausted": exhausted, "host_had_room": room})
        # what the host got back once the container, its files and folder are gone
        agent.remove_container(cname)
        self.cleanup()
        self.pid = None
        back = self.take_sample(sampler, start)
        self.finish(after, start, back)
        return resource_verdict(name, m)

    def watch(self, sampler, start, floors, cname):
        """Sample until the container is done, exits, or must be stopped; -> why."""
        lim = self.limits
        interval = float(lim["sample_interval_s"])
        horizon = 2 * interval + 0.3  # the next sample, and the time a kill takes
        deadline = start + float(lim["experiment_timeout_s"])
        if self.agent.deadline.end - 15 < deadline:  # the agent's --timeout comes first
            deadline = self.agent.deadline.end - 15
            self.m["timeout_source"] = "agent-deadline"
            self.m["timeout_s_effective"] = round(max(0.0, deadline - start), 1)
        stall_s = float(lim["stall_s"])
        last_change = time.time()
        last_value = None
        host_change, host_sig = last_change, None
        slowest = 0.0   # the longest one step of progress took (bursts on a slow machine)
        next_note = time.time() + 5
        while True:
            s = self.take_sample(sampler, start)
            now = s["t"]
            if not _container_alive(self.pid):
                return "exited"
            back = self.samples[-4] if len(self.samples) >= 4 else self.samples[0]
            for key, floor in sorted(floors.items()):
                rate = decline_rate((back["t"], back[key]), (now, s[key]))
                if floor_breached(s[key], floor, rate, horizon):
                    self.m["floor_tripped"] = key
                    self.m["floor_tripped_value"] = s[key]
                    self.m["floor_tripped_at"] = floor
                    return "floor"
            state = (read_text(self._cproc(STATE_FILE) or "", 32) or "").strip()
            if state in ("done", "held"):
                return "done"
            value = (s["container"], self.writer_counter())
            if value != last_value:
                if last_value is not None and last_value[0]:
                    slowest = max(slowest, now - last_change)
                last_value = value
                last_change = now
            sig = (s.get("free_bytes_root"), s.get("free_inodes"), s.get("pool_bytes"),
                   s.get("pool_fs_free_bytes"), s.get("dirty_bytes"))
            if sig != host_sig:
                host_sig, host_change = sig, now
            if last_value[0] and now - last_change > stall_s:
                window = stall_window(stall_s, slowest)
                if min(now - last_change, now - host_change) > window:
                    stalled, detail = stall_decision(now - last_change, now - host_change,
                                                     window, self.writer_info())
                    if stalled:
                        self.m.update({"stall_detail": detail, "stall_window_s":
                                       round(window, 2), "stall_slowest_step_s":
                                       round(slowest, 2)})
                        return "stall"
            if now >= deadline:
                return "timeout"
            if now >= next_note:
                next_note = now + 5
                self.agent.progress("experiment-progress", self.name, "%s so far, host %s %s"
                                    % (self._fmt_progress(s["container"]),
                                       FREE_KEY[self.resource], s[FREE_KEY[self.resource]]))
            time.sleep(interval)

    def wait_gone(self, seconds):
        """After a kill: until the container's first process is gone and its cgroup holds
        no process any more (its pids are the host's again), at most ``seconds``."""
        end = time.time() + seconds
        while _container_alive(self.pid) and time.time() < end:
            time.sleep(0.02)
        if self.cg_dir:
            name = "pids.current" if self.resource == "processes" else "cgroup.procs"
            while time.time() < end:
                path = os.path.join(self.cg_dir, name)
                if not os.path.exists(path):
                    break
                if name == "pids.current":
                    if not _read_cg_number(path):
                        break
                elif not (read_text(path, 64) or "").strip():
                    break
                time.sleep(0.02)

    def cleanup(self):
        """Every path: the container gone (killed without forking when still alive), its
        files and the experiment's folder removed, and the host's docker root (and pids)
        given back before the next experiment starts (a bounded wait, recorded)."""
        if self.cleaned:
            return
        self.cleaned = True
        agent = self.agent
        cname = agent.container_name(self.name)
        if cname in agent.containers:
            if self.pid and _container_alive(self.pid):
                kill_container(agent.docker, cname, 5, self.pid, self.pid_start,
                               prefer_signal=True)
                self.wait_gone(10)
            agent.remove_container(cname)
        if self.fsdir:
            if self.sampler is not None and self.sampler.fs_path and (
                    _under(self.sampler.fs_path, self.fsdir) or
                    os.path.realpath(self.sampler.fs_path) == os.path.realpath(self.fsdir)):
                # go on measuring the same filesystem once the folder is gone
                self.sampler.fs_path = os.path.dirname(self.fsdir.rstrip("/")) or "/"
            shutil.rmtree(self.fsdir, True)
        self.recover()

    def recover(self):
        """Wait (at most recovery_wait_s) until the docker root's free space and inodes, and
        the host's free pids, are back to what they were before this experiment; record it.
        Retries the container's removal meanwhile (an exhausted host can make it fail)."""
        agent, m = self.agent, self.m
        base = self.root_base or {}
        if not self.root_fs or not base:
            return
        try:
            wait = float(self.limits.get("recovery_wait_s") or 0)
            if agent.mode != "exhaust":  # on a busy real host others move the numbers too
                wait = min(wait, 10.0)
            wait = min(wait, max(0.0, agent.deadline.end - time.time() - 20))
        except (TypeError, ValueError):
            wait = 0.0
        cname = agent.container_name(self.name)
        size, itotal = base.get("size_bytes") or 0, base.get("inodes_total") or 0
        tol_bytes = max(8 * MIB, size // 100)
        tol_inodes = max(64, itotal // 100)
        pids0 = self.samples[0].get("free_pids") if self.samples else None
        start = time.time()
        synced = False
        next_rm = start + 1
        while True:
            now = fs_free(self.root_fs)
            short = []
            if base.get("free_bytes") is not None and \
                    (now.get("free_bytes") or 0) < base["free_bytes"] - tol_bytes:
                short.append("free_bytes")
            if itotal and base.get("free_inodes") is not None and \
                    (now.get("free_inodes") or 0) < base["free_inodes"] - tol_inodes:
                short.append("free_inodes")
            pids = None
            if self.resource == "processes" and self.sampler is not None:
                pids = self.sampler.sample().get("free_pids")
                if pids0 is not None and pids is not None and pids < pids0 - max(32, pids0 // 50):
                    short.append("free_pids")
            if cname in agent.containers:
                short.append("container")
            elapsed = time.time() - start
            if not short or elapsed >= wait:
                break
            if cname in agent.containers and time.time() >= next_rm:
                next_rm = time.time() + 2
                agent.remove_container(cname)
            if not synced and elapsed >= 1.0 and ("free_bytes" in short
                                                  or "free_inodes" in short):
                synced = True  # ext4 gives freed blocks back at its journal commit
                sync = find_tool("sync")
                if sync:
                    run_cmd([sync, "-f", self.root_fs], timeout=10)
                btrfs = find_tool("btrfs")
                if btrfs and m.get("target_fstype") == "btrfs":
                    # btrfs frees a removed container's subvolume in the background
                    run_cmd([btrfs, "subvolume", "sync", self.root_fs],
                            timeout=max(1.0, min(30.0, wait - elapsed)))
                    run_cmd([btrfs, "filesystem", "sync", self.root_fs], timeout=10)
            time.sleep(0.2)
        m["recovery_path"] = self.root_fs
        m["recovery_free_bytes_before"] = base.get("free_bytes")
        m["recovery_free_bytes"] = now.get("free_bytes")
        m["recovery_free_inodes_before"] = base.get("free_inodes")
        m["recovery_free_inodes"] = now.get("free_inodes")
        if self.resource == "processes":
            m["recovery_free_pids_before"] = pids0
            m["recovery_free_pids"] = pids
        m["recovered"] = not short
        m["recovery_short"] = ",".join(short) or None
        m["recovery_s"] = round(time.time() - start, 3)

    def _fmt_progress(self, v):
        if self.resource in ("disk", "memory"):
            return fmt_bytes(v)
        return fmt_count(v)

    def _cgroup_peak(self):
        if not self.cg_dir:
            return
        v = _read_cg_number(os.path.join(self.cg_dir, "memory.max_usage_in_bytes"
                                         if self.cg_version == 1 else "memory.peak"))
        if v is not None and (self.peak_container is None or v > self.peak_container):
            self.peak_container = v

    def _at_peak(self, key):
        """The value at the container's peak (before the host's own checks), else the
        extreme seen."""
        if self.peak_sample is not None and self.peak_sample.get(key) is not None:
            return self.peak_sample[key]
        return self._min(key)

    def _min(self, key):
        vals = [s[key] for s in self.samples if s.get(key) is not None]
        return min(vals) if vals else None

    def _max(self, key):
        vals = [s[key] for s in self.samples if s.get(key) is not None]
        return max(vals) if vals else None

    def _before(self, s0):
        m = self.m
        r = self.resource
        if r == "disk":
            m["host_free_bytes_before"] = s0["free_bytes"]
            m["host_fs_size_bytes"] = s0["size_bytes"]
        elif r == "inodes":
            m["host_free_inodes_before"] = s0["free_inodes"]
            m["host_inodes_total"] = s0["inodes_total"]
            m["host_free_bytes_before"] = s0["free_bytes"]
        elif r == "memory":
            m["host_mem_available_before"] = s0["mem_available"]
            m["host_swap_free_before"] = s0["swap_free"]
        else:
            m["host_threads_before"] = s0["threads"]
            m["host_procs_before"] = s0["procs"]
            m["host_free_pids_before"] = s0["free_pids"]

    def _zero_progress(self):
        key = {"disk": "written_bytes", "inodes": "files_created", "memory": "resident_bytes",
               "processes": "processes_started"}[self.resource]
        self.m[key] = 0
        self.m["landed_on_host_ratio"] = None
        self.m["limit_applied"] = False

    def _progress_metrics(self, parsed, live, peak):
        """How far the container got, from the best source available."""
        m, r = self.m, self.resource
        if r == "disk":
            sources = []
            if parsed["dd_bytes"] is not None:
                sources.append((parsed["dd_bytes"], "dd"))
            if self.name == "disk-shared":
                size = _stat_size(os.path.join(self.shared_dir, "fill"))
                if size is not None:
                    sources.append((size, "host-file"))
            elif live.get("size_live") is not None:
                sources.append((live["size_live"], "container-file"))
            if self.peak_container is not None:
                sources.append((self.peak_container, "container-file"))
            written, src = (sources[0] if sources else (None, None))
            m["written_bytes"], m["written_bytes_source"] = written, src
            if parsed["dd_bytes"] and parsed["dd_seconds"]:  # dd's own view of its speed
                m["container_dd_rate_bytes_per_s"] = round(
                    parsed["dd_bytes"] / max(parsed["dd_seconds"], 1e-6), 1)
        elif r == "inodes":
            files, src = parsed["count"], "script"
            if files is None:
                files, src = live.get("count_live"), "live-count"
            if files is None and self.peak_container is not None:
                files, src = self.peak_container, "live-count"
            if files is None:  # killed before its first report: what the host lost
                b0 = self.samples[0]["free_inodes"] if self.samples else None
                low = self._min("free_inodes")
                files = max(0, b0 - low) if (b0 is not None and low is not None) else None
                src = "host-inodes"
            m["files_created"], m["files_created_source"] = files, src
            if parsed["dirs"] is not None:
                m["dirs_created"] = parsed["dirs"] + 1
            elif files is not None:
                m["dirs_created"] = (files + 999) // 1000 + 1
            else:
                m["dirs_created"] = None
        elif r == "memory":
            self._cgroup_peak()
            m["resident_bytes"] = self.peak_container
            m["resident_source"] = "cgroup" if self.cg_dir else None
        else:
            # exhaust mode: the container kept retrying after its first failed fork, so the
            # live count (read at the peak) can be above the one its script printed
            counts = [c for c in (parsed["count"], live.get("count_live")) if c is not None]
            m["processes_started"] = max(counts) if counts else None
            m["container_pids_peak"] = self.peak_container if self.cg_dir else None

    def _ratio_parts(self, numerator, denominator, kind):
        """Every ratio explainable: its numerator, denominator and definition."""
        self.m["ratio_numerator"] = numerator
        self.m["ratio_denominator"] = denominator
        self.m["ratio_definition"] = RATIO_DEFINITIONS.get(kind)

    def _pool_metrics(self, used, back):
        """devicemapper: how much of what the container wrote grew the pool's loop file
        (allocated bytes, st_blocks) and the pool's data space, and whether the container's
        own filesystem (not the host's) took its inodes."""
        m = self.m
        if self.samples and self.samples[0].get("pool_bytes") is not None:
            b0 = self.samples[0]["pool_bytes"]
            high = self._max("pool_bytes")
            m["pool_file_allocated_before_bytes"] = b0
            m["pool_file_allocated_max_bytes"] = high
            m["pool_file_growth_bytes"] = (high - b0) if high is not None else None
            m["pool_file_allocated_after_bytes"] = back.get("pool_bytes") if back else None
            g = m["pool_file_growth_bytes"]
            m["pool_growth_ratio"] = round(float(g) / used, 3) if (
                used and g is not None and self.resource == "disk") else None
        u0, u1 = m.get("pool_data_space_used_before_bytes"), \
            m.get("pool_data_space_used_at_peak_bytes")
        if u0 is not None and u1 is not None:
            m["pool_data_space_growth_bytes"] = u1 - u0
        f0, f1 = m.get("container_fs_free_inodes_start"), \
            m.get("container_fs_free_inodes_at_peak")
        if f0 is not None and f1 is not None:
            m["container_fs_free_inodes_delta"] = f0 - f1
        b0, b1 = m.get("container_fs_free_bytes_start"), m.get("container_fs_free_bytes_at_peak")
        if b0 is not None and b1 is not None:
            m["container_fs_free_bytes_delta"] = b0 - b1

    def finish(self, after, start, back=None):
        """Host-side numbers (before/min/delta/after), the ratio, rates, the series."""
        m, r = self.m, self.resource
        if r in ("disk", "inodes"):
            key, pre = ("free_bytes", "host_free_bytes") if r == "disk" else \
                ("free_inodes", "host_free_inodes")
            before = m.get(pre + "_before")
            low = self._min(key)
            m[pre + "_min"] = low
            at_peak = self._at_peak(key)
            m[pre + "_at_peak"] = at_peak
            m[pre + "_delta"] = (before - at_peak) if (
                before is not None and at_peak is not None) else None
            m[pre + "_after"] = back[key] if back else None
            if r == "inodes":
                m["host_free_bytes_min"] = self._min("free_bytes")
            used = m.get("written_bytes") if r == "disk" else (
                (m.get("files_created") or 0) + (m.get("dirs_created") or 0))
            if r == "disk":
                # root's view (reserved blocks included) is what a root container fills; the
                # largest drop seen while the container held its data: ext4 hands back part of
                # its delayed-allocation reservation before the peak sample (seen: 0.78 at the
                # peak sample, 1.00 at the low point, for the same 118 MiB file)
                b0 = self.samples[0]["free_bytes_root"] if self.samples else None
                lowr = self._min("free_bytes_root")
                delta = (b0 - lowr) if (b0 is not None and lowr is not None) else \
                    m[pre + "_delta"]
            else:
                delta = m[pre + "_delta"]
            m["landed_on_host_ratio"] = round(float(delta) / used, 3) if (
                used and delta is not None) else None
            self._ratio_parts(delta, used, "disk-dm" if (
                r == "disk" and m.get("pool_data_file")) else r)
            self._pool_metrics(used, back)
            if r == "disk" and m.get("thin_pool_overcommitted") and \
                    (m["landed_on_host_ratio"] or 0) >= 0.8:
                # a per-container limit exists, but the host runs out before it: the host's
                # disk is what the container fills (the classification's word)
                m["host_affected"] = True
        elif r == "memory":
            before = m.get("host_mem_available_before")
            low = self._min("mem_available")
            m["host_mem_available_min"] = low
            m["host_mem_available_delta"] = (before - low) if (
                before is not None and low is not None) else None
            m["host_mem_available_after"] = back["mem_available"] if back else None
            m["host_swap_free_min"] = self._min("swap_free")
            res = m.get("resident_bytes")
            d = m["host_mem_available_delta"]
            m["landed_on_host_ratio"] = round(float(d) / res, 3) if (res and d is not None) \
                else None
            self._ratio_parts(d, res, r)
        else:
            before = m.get("host_threads_before")
            high = self._max("threads")
            m["host_threads_max_seen"] = high
            m["host_threads_delta"] = (high - before) if (
                before is not None and high is not None) else None
            m["host_procs_max_seen"] = self._max("procs")
            m["host_free_pids_min"] = self._min("free_pids")
            m["host_threads_after"] = back["threads"] if back else None
            # kernel-wide threads (/proc/loadavg) count every lab host on a shared kernel and
            # every thread: kept for reference, not the ratio.  The ratio: the processes
            # this host sees (its pid namespace) at the container's peak, per process the
            # container held (its pids cgroup, else its children + its shell)
            m["host_threads_scope"] = "kernel"
            m["host_procs_at_peak"] = self._at_peak("procs")
            started = m.get("processes_started")
            own = m.get("container_pids_peak") or ((started + 1) if started else None)
            m["container_procs_source"] = "pids-cgroup" if m.get("container_pids_peak") \
                else "script-count+1"
            ratio, num, den = process_ratio(m.get("host_procs_before"),
                                            m["host_procs_at_peak"], own)
            m["host_procs_delta"] = num
            m["landed_on_host_ratio"] = ratio
            self._ratio_parts(num, den, r)
        run_s = m.get("watch_s") or m.get("run_s")
        got = {"disk": m.get("written_bytes"), "inodes": m.get("files_created"),
               "memory": m.get("resident_bytes"), "processes": m.get("processes_started")}[r]
        rate_key = {"disk": "fill_rate_bytes_per_s", "inodes": "create_rate_per_s",
                    "memory": "alloc_rate_bytes_per_s", "processes": "fork_rate_per_s"}[r]
        m[rate_key] = round(got / run_s, 1) if (got and run_s) else None
        m["samples"] = len(self.samples)
        m["series_points"] = min(len(self.samples), int(self.limits["max_series_points"]))
        m["__series__"] = downsample(self.series, int(self.limits["max_series_points"]))


def _resource_experiment(name):
    def experiment(agent, metrics):
        run = ResourceRun(agent, name, metrics)
        try:
            return run.run()
        finally:  # an error must not leave the container holding the host's resources,
            try:  # nor its files filling the disk for the next experiment
                run.cleanup()
            except Exception:
                cname = agent.container_name(name)
                if cname in agent.containers:
                    kill_container(agent.docker, cname, 5)
                    agent.remove_container(cname)
    experiment.__name__ = "experiment_" + name.replace("-", "_")
    return experiment


EXPERIMENTS = {"storage-location": experiment_storage_location}
for _name in RESOURCE_EXPERIMENTS:
    EXPERIMENTS[_name] = _resource_experiment(_name)
EXPERIMENT_ORDER = ("storage-location",) + RESOURCE_EXPERIMENTS


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
        except SkipExperiment as exc:
            record["status"] = "skipped"
            record["verdict"] = exc.msg
            record["error"] = {"kind": "not-supported", "message": exc.msg}
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
        series = record["metrics"].pop("__series__", None)
        if series is not None:
            record["series"] = series
        if agent.start_retries:
            record["metrics"]["container_start_retries"] = list(agent.start_retries)
            del agent.start_retries[:]
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


def execute_run(run_id, host, out, experiments, workdir, timeout, mode="bounded",
                limit_overrides=None):
    """The body of `run`; returns the process exit code."""
    progress_path = out + ".progress"
    reserve = out + ".reserve"
    out_dir = os.path.dirname(out)
    if out_dir and not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    for stale in (out, out + ".tmp", progress_path, reserve):
        try:
            os.remove(stale)
        except OSError:
            pass
    result = new_result(run_id, host)
    result["mode"] = mode
    result["limits"] = dict(limit_overrides or {})
    docker = Docker()
    agent = Agent(run_id, host, workdir, timeout, progress_path, docker, mode, limit_overrides)
    exit_code = 0
    if [e for e in experiments if e in RESOURCE_OF]:
        # the result's space, and (exhaust) the agent's life, are secured before any run
        size = agent.limits()["result_reserve_bytes"]
        result["protection"] = {"result_reserve_bytes": reserve_space(reserve, size)}
        if mode == "exhaust":
            result["protection"].update(protect_self())
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
                reaped = reap(workdir, usable and docker or None, own_run_id=run_id,
                              fs_parents=fs_parents_of(dfacts.get("root_dir")),
                              controller_runs=controller_runs_of(out))
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
                try:  # the one probe image of the run, before any experiment fills a disk
                    image = agent.probe_image()
                    agent.image_reported = False
                    result["probe_image"] = image.get("probe_image")
                except ExperimentError:
                    pass  # each experiment tries again and reports the error itself
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
            write_json_atomic(out, result, reserve)
        except (IOError, OSError) as exc:
            sys.stderr.write("labctl probe agent: cannot write the result to %s: %s\n"
                             % (out, exc))
            exit_code = 1
        try:
            os.remove(reserve)
        except OSError:
            pass
        agent.progress("end", None, "status %s" % result["status"])
    return exit_code


USAGE = """usage: probe_agent.py COMMAND [options]

commands:
  run --run-id ID --host NAME --out PATH [--experiments storage-location]
      [--workdir DIR] [--timeout SECONDS] [--mode bounded|exhaust]
      [--limit NAME=VALUE ...]
                 gather facts, run the experiments, write the result JSON to PATH;
                 experiments: all, storage-location (default), disk, disk-limited,
                 disk-shared, inodes, memory, memory-limited, processes,
                 processes-limited
  facts          print the host's facts as JSON
  reap [--workdir DIR] [--runs DIR]
                 remove leftovers (labctl-probe-* containers, run folders, the
                 controller's folders in /var/tmp/labctl-runs) of dead runs
  --version      print the agent version

examples:
  python probe_agent.py run --run-id r1 --host centos66 --out /var/tmp/labctl/r1.json
  python probe_agent.py run --run-id r2 --host lab1 --out /var/tmp/labctl/r2.json \
      --experiments disk,memory-limited --limit disk_cap_bytes=256M --limit memory_limit_bytes=32M
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
                     help="comma separated, or 'all': %s" % ", ".join(EXPERIMENT_ORDER))
        p.add_option("--mode", dest="mode", default="bounded",
                     help="bounded (default: caps and safety floors) or exhaust (run to real "
                     "exhaustion; only on disposable hosts)")
        p.add_option("--limit", dest="limits", action="append", default=[],
                     metavar="NAME=VALUE", help="override a limit (repeatable), e.g. "
                     "disk_cap_bytes=512M; names: %s" % ", ".join(sorted(DEFAULT_LIMITS)))
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
        exps = []
        for e in opts.experiments.split(","):
            e = e.strip()
            for one in (EXPERIMENT_ORDER if e == "all" else (e,)):
                if one and one not in exps:
                    exps.append(one)
        unknown = [e for e in exps if e not in EXPERIMENTS]
        if unknown or not exps:
            p.error("unknown experiment(s) %s; known: all, %s"
                    % (", ".join(unknown) or "(none given)", ", ".join(EXPERIMENT_ORDER)))
        if opts.mode not in MODES:
            p.error("--mode must be bounded or exhaust, got %r" % opts.mode)
        try:
            overrides = parse_limit_options(opts.limits)
        except ValueError as exc:
            p.error(str(exc))
        return execute_run(opts.run_id, opts.host, os.path.abspath(opts.out), exps,
                           os.path.abspath(opts.workdir), opts.timeout, opts.mode, overrides)
    if command == "facts":
        p = _parser("probe_agent.py facts", "%prog")
        opts, args = p.parse_args(rest)
        if args:
            p.error("unexpected arguments: %s" % " ".join(args))
        facts = gather_facts(Docker())
        print(json.dumps(facts, indent=2, sort_keys=True, separators=(",", ": ")))
        return 0
    if command == "reap":
        p = _parser("probe_agent.py reap", "%prog [--workdir DIR] [--runs DIR]")
        p.add_option("--workdir", dest="workdir", default=DEFAULT_WORKDIR)
        p.add_option("--runs", dest="runs", default=CONTROLLER_RUNS,
                     help="the controller's run folders (default %s)" % CONTROLLER_RUNS)
        opts, args = p.parse_args(rest)
        if args:
            p.error("unexpected arguments: %s" % " ".join(args))
        docker = Docker()
        root = docker_facts(docker).get("root_dir") if docker.path else None
        removed = reap(os.path.abspath(opts.workdir), docker, fs_parents=fs_parents_of(root),
                       controller_runs=os.path.abspath(opts.runs))
        print(json.dumps(removed, indent=2, sort_keys=True, separators=(",", ": ")))
        return 0
    sys.stderr.write("probe_agent.py: unknown command %r\n\n%s" % (command, USAGE))
    return 2


if __name__ == "__main__":
    sys.exit(main())
