# -*- coding: utf-8 -*-
"""What runs inside a resource experiment's container: its shell script and its log."""

from __future__ import absolute_import, division, print_function

import os
import re

from .consts import MIB, PROBE_TOOLS_ALL
from .image import find_tool
from .limits import RESOURCE_OF
from .oom import classify_container_error
from .text import one_line, read_text, run_cmd, which

PROBE_TOOLS_RESOURCES = PROBE_TOOLS_ALL
BIG_COUNT = 2000000000  # "no cap" for the shell loops (fits every shell's arithmetic)
STATE_FILE = "/dev/labctl-state"   # the container's /dev is a tmpfs: writable even when the
COUNT_FILE = "/dev/labctl-count"   # disk is full; the host reads it via /proc/PID/root
SOAK_FILE = "/dev/labctl-soak"     # processes, exhaust mode: the fork retry loop
LOW_FREE_PIDS = 64  # fewer free pids at the peak: stop the container by a signal, not the engine


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
        # under its own limit (-m), both sides of the pipe ask the killer to take them before
        # the container's first process (raising one's own oom_score_adj needs no privilege):
        # seen in CI, head's next pipe write met the limit again before tail's charge was
        # gone, the killer took the shell (bigger than head) and the container ended at once.
        # Without a limit the kernel's own choice between container and host is the finding.
        first = "echo 1000 2>/dev/null > /proc/self/oom_score_adj; " if name == "memory-limited" \
            else ""
        reader = "(%sexec tail)" % first if first else "tail"
        return ("(%shead -c %d /dev/zero && echo held > %s && exec sleep %d) | %s; %s"
                % (first, int(amount), STATE_FILE, sleep_s, reader, linger))
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


def stat_size(path):
    try:
        return os.stat(path).st_size
    except (OSError, TypeError):
        return None


def container_alive(pid):
    if not pid:
        return False
    stat = read_text("/proc/%d/stat" % pid, 512)
    if stat is None:
        return False
    fields = stat.rsplit(")", 1)[-1].split()
    return not (fields and fields[0] in ("Z", "X"))


def kernel_log():
    path = which("dmesg") or find_tool("dmesg")
    if not path:
        return None
    res = run_cmd([path], timeout=15)
    return res.out if res.ok else None
