# -*- coding: utf-8 -*-
"""Small helpers: text and numbers, /proc and file reads, running a command, atomic JSON
writes and the progress file."""

from __future__ import absolute_import, division, print_function

import binascii
import errno
import json
import os
import re
import subprocess
import tempfile
import time

from .consts import GIB, KIB, MIB
from .hostpaths import NOFOLLOW, ensure_local_dir, open_append, open_replacing

try:  # Python 2
    TEXT_TYPE = unicode
    UNICHR = unichr
except NameError:  # Python 3
    TEXT_TYPE = str
    UNICHR = chr



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
            data = f.read(limit) if limit else f.read()
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


def monotonic():
    """Seconds on a clock nobody steps, for durations and budgets (never for dates): the wall
    clock stepped back an hour made durations negative, forward two days ended every budget.
    time.monotonic from Python 3.3; before, os.times()'s elapsed time (the kernel's tick count
    since boot on Linux)."""
    clock = getattr(time, "monotonic", None)
    return clock() if clock is not None else os.times()[4]


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
    start = monotonic()
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
        # short sleeps, capped low: a doubling delay made a 0.08 s `docker exec` take 0.15 s
        # (wakeups cost microseconds; the agent runs dozens of such commands)
        delay = 0.002
        try:
            while proc.poll() is None:
                if monotonic() >= deadline:
                    timed_out = True
                    break
                time.sleep(delay)
                delay = min(delay * 1.5, 0.02)
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
                         timed_out=timed_out, seconds=monotonic() - start)
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
    ensure_local_dir(parent)
    tmp = path + ".tmp"
    data = json.dumps(obj, indent=2, sort_keys=True, separators=(",", ": "))
    f = None
    if reserve and os.path.isfile(reserve) and not os.path.islink(reserve):
        try:
            os.rename(reserve, tmp)
            f = os.fdopen(os.open(tmp, os.O_RDWR | NOFOLLOW), "r+b")
        except (IOError, OSError):
            f = None
    if f is None:
        f = open_replacing(tmp)
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
        write_and_sync(open_append(path), line.encode("utf-8") + b"\n")
    except (IOError, OSError):
        pass


def write_and_sync(f, data):
    """Write ``data`` to the open file ``f``, flush and fsync it; ``f`` is closed on every
    path."""
    try:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    finally:
        f.close()



def read_int(path):
    return to_int(read_text(path))


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
