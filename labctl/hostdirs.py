"""labctl's folder on a host, made and checked from the controller before anything runs there.

The layout and the rule are the agent's own (:mod:`labctl.agent.hostpaths`): one function
decides, here given SFTP's ``lstat`` and ``mkdir`` so that no tool on the host takes part. What
labctl will run there (the interpreter, the pushed agent) is checked by the same rule, at the
path the host resolves it to, and run by that path.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from .agent import hostpaths
from .errors import ProbeError, UnsafeHostPath
from .hosts import HostRecord
from .transport import SSHTransport

#: the agent's interpreter, when the inventory names none: the first found on the host
PYTHONS = ("python3", "python2", "python", "/usr/libexec/platform-python")


@dataclass(frozen=True)
class HostSide:
    """Who labctl is on a host and where its files go there."""

    host: HostRecord
    uid: int
    base: str
    #: the interpreter for the agent as the host resolves it ("" when not asked or none)
    python: str = ""

    @property
    def runs(self) -> str:
        return hostpaths.runs_of(self.base)

    @property
    def work(self) -> str:
        return hostpaths.work_of(self.base)

    def run_dir(self, run_id: str) -> str:
        return f"{self.runs}/{run_id}"


def _identify_script(pythons: tuple[str, ...]) -> str:
    # bash's `command -v` also names a file that is not executable (dash's does not)
    find = "".join(
        f'[ -z "$py" ] && c=$(command -v {shlex.quote(p)} 2>/dev/null) && '
        '{ if [ -x "$c" ]; then py=$c; else noexec="$noexec $c"; fi; }; '
        for p in pythons
    )
    return (
        f'echo "uid=$(id -u)"; echo "home=$HOME"; py=; noexec=; {find}'
        'echo "python=$py"; echo "noexec=$noexec"'
    )


def identify(t: SSHTransport, *, python: bool = False) -> HostSide:
    """The login user's uid and labctl's folder for it (and, asked, the agent's interpreter,
    resolved and checked); one command on the host."""
    host = t.host
    pythons = ((host.agent_python,) if host.agent_python else PYTHONS) if python else ()
    res = t.run(_identify_script(pythons), timeout=30)
    found = dict(line.split("=", 1) for line in res.stdout.splitlines() if re.match(r"^\w+=", line))
    uid = found.get("uid", "")
    if not res.ok or not uid.isdigit():
        raise ProbeError(
            f"cannot tell who labctl is on the host (`id -u` said {uid or res.stderr.strip()!r})",
            host=host.name,
            hint="check that the login shell runs plain sh commands",
        )
    home = found.get("home", "")
    base = host.host_dir or hostpaths.base_for(int(uid), home)
    if not base.startswith("/"):
        raise ProbeError(
            f"the login user has no home folder ($HOME is {home!r})",
            host=host.name,
            hint="set labctl_host_dir in the inventory to a folder only that user can write",
        )
    side = HostSide(host, int(uid), base)
    if not python:
        return side
    if not found.get("python"):
        wanted = host.agent_python or "python3, python2 or python"
        noexec = found.get("noexec", "").split()
        if noexec:
            raise ProbeError(
                f"no Python interpreter on the host can be run (looked for {wanted}; "
                f"{', '.join(noexec)}: not executable)",
                host=host.name,
                hint="make it executable (chmod 755), or set labctl_agent_python",
            )
        raise ProbeError(
            f"no Python interpreter on the host (looked for {wanted})",
            host=host.name,
            hint="install python3 (2.6+ works) on it, or set labctl_agent_python",
        )
    real = t.realpath(found["python"])
    check(t, side, real, INTERPRETER)
    return HostSide(host, side.uid, side.base, real)


def _name_of(t: SSHTransport, uid: int) -> str | None:
    """A user's name on the host (for the message that names an owner)."""
    res = t.run(f"id -nu {int(uid)} 2>/dev/null", timeout=30)
    name = res.stdout.strip()
    return name if res.ok and re.match(r"^[\w.@-]+$", name) else None


#: what a refused path is to labctl, and where else the user can point it
FOLDER = ("what labctl runs and writes there", "or set labctl_host_dir to a folder")
AGENT = ("the agent that labctl runs", "or set labctl_host_dir to a folder")
INTERPRETER = ("the agent's interpreter", "or point labctl_agent_python at one")


def _refusal(side: HostSide, path: str, why: str, what: tuple[str, str]) -> UnsafeHostPath:
    user = side.host.user
    return UnsafeHostPath(
        f"{path} {why}: another user of the host could change {what[0]} (as {user})",
        host=side.host.name,
        hint=f"remove or fix it (chown root, chmod go-w), {what[1]} only {user} can change",
    )


def check(t: SSHTransport, side: HostSide, path: str, what: tuple[str, str] = AGENT) -> None:
    """Refuse ``path`` unless it keeps the rule (every component, from /)."""
    problem = hostpaths.path_problem(path, side.uid, t.lstat, lambda u: _name_of(t, u))
    if problem is not None:
        raise _refusal(side, problem[0], problem[1], what)


def ensure(t: SSHTransport, side: HostSide, path: str) -> str:
    """``path`` as a folder that keeps the rule, made (0700) where missing, or refused."""
    try:
        return str(hostpaths.ensure_dir(path, side.uid, t.lstat, t.mkdir, lambda u: _name_of(t, u)))
    except hostpaths.UnsafePath as exc:
        raise _refusal(side, exc.path, exc.why, FOLDER) from None


def prepare_run(t: SSHTransport, side: HostSide, run_id: str) -> str:
    """The run's folder and the agent's work folder on the host, made and checked."""
    ensure(t, side, side.work)
    return ensure(t, side, side.run_dir(run_id))


def check_if_there(t: SSHTransport, side: HostSide, path: str) -> None:
    """``check`` for a folder that may be gone (a run whose folder was removed): refused only
    when it, or a folder above it, is there and breaks the rule."""
    problem = hostpaths.path_problem(path, side.uid, t.lstat, lambda u: _name_of(t, u))
    if problem is not None and problem[1] != hostpaths.MISSING:
        raise _refusal(side, problem[0], problem[1], FOLDER)
