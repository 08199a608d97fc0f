# -*- coding: utf-8 -*-
"""Where labctl keeps its files on a host, and the one rule for every path it uses there.

The rule (``path_problem``): every component of the path, from ``/`` down, is not a symbolic
link, is owned by root or by the user labctl logs in as, and is not writable by group or
others.  The one exception is a folder above the path that is owned by root and has the sticky
bit (``/tmp``, ``/var/tmp``): there nobody can rename or remove what is not theirs.  A path that
keeps the rule can be changed by root and that user only, so what labctl checks there stays
what it checked.

Folders are made with ``mkdir`` (which never reuses what exists) and mode 0700, then checked;
files are created with ``O_EXCL`` and ``O_NOFOLLOW``, so a link planted in their place is never
written through.  The controller applies the same rule over SFTP: ``path_problem`` and
``ensure_dir`` take the ``lstat`` and ``mkdir`` to use.

The default home of labctl's files on a host is one no other user can create at all:
``/var/lib/labctl`` when labctl logs in as root, ``~/.local/state/labctl`` otherwise; the
inventory variable ``labctl_host_dir`` names another.  Under it, ``runs/<run-id>/`` holds the
controller's files of one run (the agent's copy, its log, pid file, progress and result) and
``work/`` the agent's own (its run folders, the probe image's tarball, same-filesystem folders).
"""

from __future__ import absolute_import, division, print_function

import errno
import os
import stat

ROOT_BASE = "/var/lib/labctl"
#: under the user's home, for a user other than root
USER_BASE = os.path.join(".local", "state", "labctl")
RUNS = "runs"
WORK = "work"
MISSING = "does not exist"
#: O_NOFOLLOW where the platform has it (Linux: every Python from 2.6)
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: a file of labctl's: the owner reads and writes, nobody else
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


class UnsafePath(Exception):
    """A path labctl will not use: ``path`` (the component at fault) and ``why``."""

    def __init__(self, path, why):
        Exception.__init__(self, "%s %s" % (path, why))
        self.path = path
        self.why = why

    def line(self):
        return "%s %s" % (self.path, self.why)


def base_for(uid, home):
    """labctl's folder on a host for the user ``uid`` whose home is ``home``."""
    if uid == 0:
        return ROOT_BASE
    return os.path.join(home, USER_BASE)


def runs_of(base):
    return os.path.join(base, RUNS)


def work_of(base):
    return os.path.join(base, WORK)


def default_base():
    """labctl's folder for the user running this process."""
    return base_for(os.geteuid(), os.path.expanduser("~"))


def _components(path):
    parts = [p for p in path.split("/") if p]
    return ["/"] + ["/" + "/".join(parts[:i + 1]) for i in range(len(parts))]


def _who_writes(mode):
    if mode & stat.S_IWGRP and mode & stat.S_IWOTH:
        return "group and others"
    return "group" if mode & stat.S_IWGRP else "others"


def path_problem(path, uid, lstat=os.lstat, name_of=None, group_ok=False):
    """None when only root and ``uid`` can change what ``path`` names; else (component, why),
    the first component from ``/`` that breaks the rule (why is MISSING when it is absent).

    ``lstat`` may be SFTP's (the controller checks a host's paths with it); ``name_of(uid)``
    gives a user's name for the message. ``group_ok``: a folder's group may write (the
    controller's own files, on systems whose umask is 002: the group is trusted there)."""
    if not path.startswith("/") or "/./" in path + "/" or "/../" in path + "/":
        return path, "is not an absolute, normalised path"
    comps = _components(path)
    for i, comp in enumerate(comps):
        last = i == len(comps) - 1
        try:
            st = lstat(comp)
        except (IOError, OSError) as exc:
            if getattr(exc, "errno", None) == errno.ENOENT:
                return comp, MISSING
            return comp, "cannot be examined (%s)" % (getattr(exc, "strerror", None) or exc)
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            return comp, "is a symbolic link"
        if not last and not stat.S_ISDIR(mode):
            return comp, "is not a folder"
        if st.st_uid not in (0, uid):
            owner = "uid %d" % st.st_uid
            name = name_of(st.st_uid) if name_of else None
            if name:
                owner += " (%s)" % name
            return comp, "is owned by %s, not by root or the user labctl logs in as" % owner
        if mode & (stat.S_IWOTH if group_ok else stat.S_IWGRP | stat.S_IWOTH):
            if not last and st.st_uid == 0 and mode & stat.S_ISVTX:
                continue  # /tmp, /var/tmp: others cannot rename or remove what is ours
            return comp, "is writable by %s (mode %04o)" % (_who_writes(mode),
                                                             stat.S_IMODE(mode))
    return None


def ensure_dir(path, uid, lstat=os.lstat, mkdir=os.mkdir, name_of=None):
    """``path`` as a folder that keeps the rule, made (mode 0700) where it is missing;
    raises UnsafePath naming the component at fault."""
    for _attempt in range(3):
        problem = path_problem(path, uid, lstat, name_of)
        if problem is None:
            if not stat.S_ISDIR(lstat(path).st_mode):
                raise UnsafePath(path, "is not a folder")
            return path
        comp, why = problem
        if why != MISSING:
            raise UnsafePath(comp, why)
        # every missing component, top down: each new one is ours and 0700, so nobody else
        # can put anything below it
        comps = _components(path)
        for missing in comps[comps.index(comp):]:
            try:
                mkdir(missing, PRIVATE_DIR)
            except (IOError, OSError) as exc:
                try:
                    lstat(missing)
                except (IOError, OSError):
                    raise UnsafePath(missing, "cannot be made (%s)"
                                     % (getattr(exc, "strerror", None) or exc))
                break  # made meanwhile (another run): check it from the top again
    raise UnsafePath(path, "keeps changing while labctl makes it")


def user_name(uid):
    """The name of ``uid`` on this host, or None."""
    try:
        import pwd
        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return None


def local_problem(path):
    """``path_problem`` for this process's user, on this host; None when the path is safe."""
    return path_problem(path, os.geteuid(), os.lstat, user_name)


def ensure_local_dir(path):
    """``ensure_dir`` for this process's user, on this host."""
    return ensure_dir(os.path.abspath(path), os.geteuid(), os.lstat, os.mkdir, user_name)


def open_new(path, mode=PRIVATE_FILE):
    """A new file at ``path`` for writing (binary): never an existing one, never through a link."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, mode)
    return os.fdopen(fd, "wb")


def open_replacing(path, mode=PRIVATE_FILE):
    """``open_new`` after removing whatever is at ``path`` (a file or a link, never followed)."""
    try:
        os.remove(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
    return open_new(path, mode)


def open_append(path, mode=PRIVATE_FILE):
    """``path`` opened to append (made when missing), never through a link."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | NOFOLLOW, mode)
    return os.fdopen(fd, "ab")
