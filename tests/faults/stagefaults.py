"""The campaign's second round of faults (issue 18): each stage of a run meets what a lab
engineer meets. Provisioning cut by a signal; a nearly full labctl folder or /var/lib/docker on
a host; the inner dockerd killed while the agents run; the agent's wall clock stepped; the
results folder removed or made read-only in the provision, probe or collect stage; a bad
``--set``; an odd host name in the inventory.

Each ``trial_*`` function runs one fault and its recovery and records what it saw in a
:class:`Trial`; the campaign (bench/faults.py, through tests/faults/campaign.py) then runs a
plain probe and looks for leftovers on the hosts, as for the first round's kinds.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .faultlib import (
    PROBE_TIMEOUT,
    Call,
    FaultLab,
    Trial,
    check_results,
    run_dirs,
)

#: what each kind may exit with (README's table), the faulted command first
EXIT_CODES: dict[str, set[int]] = {
    "provision-signal": {130},
    "host-dir-full": {0, 4},
    "engine-disk-full": {0, 1},
    "dead-engine": {0, 1, 4},
    "clock-step": {0},
    "results-gone": {0, 5},
    "bad-set": {2},
    "odd-host-name": {0, 2},
}
KINDS = tuple(EXIT_CODES)
#: the host's labctl folder (root's; playbooks and hostpaths agree)
HOST_BASE = "/var/lib/labctl"
STAMP = "/etc/labctl/provisioned"  # labctl.lab roles/labctl_warm/defaults/main.yml
BAD_SETS = (
    "disk_floor_bytes=-5G",
    "disk_flor_bytes=1G",
    "processes_cap=" + "9" * 60_000,
    "memory_cap_bytes=12QB",
    "disk_cap_fraction=2.5",
    "=5",
    "disk_floor_bytes",
    "processes_cap=1e3",
)
ODD_NAMES = ("bookworm \u00fc 1", "../pwn", "a/b", "$(touch /tmp/labctl-pwned)", "x" * 300,
             "-rf", "..", "host:1", "UPPER.lower_1@x")  # fmt: skip


# -- shared helpers (the single-fault tests use them too) -----------------------------------------
def playbook_pids(parent: int) -> list[int]:
    """The ansible-playbook processes below ``parent``."""
    res = subprocess.run(["pgrep", "-f", "ansible-playbook"], capture_output=True, text=True)
    return [p for p in (int(x) for x in res.stdout.split()) if _descends_from(p, parent)]


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


@contextlib.contextmanager
def nearly_full(lab: FaultLab, host: str, folder: str, free: int) -> Iterator[str]:
    """``folder`` on ``host`` on a 16 MiB tmpfs of its own (mode 0700, as labctl's rule wants)
    with about ``free`` bytes left; unmounted on every path. Yields what df said."""
    rc, out = lab.exec(host, f"mkdir -p {folder} && mount -t tmpfs -o size=16m,mode=0700 "
                             f"labctl-full {folder} && head -c $(( $(df -Pk {folder} | awk "
                             f"'NR==2 {{print $4}}') * 1024 - {free} )) /dev/zero > {folder}/fill; "
                             f"df -Pk {folder} | tail -1")  # fmt: skip
    assert rc == 0, out
    try:
        yield f"{out.split()[-3] if out.split() else '?'} KiB free"
    finally:
        lab.exec(host, f"umount {folder} || umount -l {folder}")


def lab_inventory(lab: FaultLab) -> dict[str, Any]:
    """The lab's inventory as data (JSON under a comment line)."""
    assert lab.inventory is not None
    text = "\n".join(ln for ln in lab.inventory.read_text().splitlines() if not ln.startswith("#"))
    return dict(json.loads(text))


def host_vars(inventory: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The hosts of a lab inventory, by name (the one group `lab up` writes)."""
    (group,) = inventory["all"]["children"].values()
    return dict(group["hosts"])


def write_inventory(
    inventory: dict[str, Any], hosts: dict[str, dict[str, Any]], path: Path
) -> Path:
    (group,) = inventory["all"]["children"].values()
    group["hosts"] = hosts
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(inventory, indent=2))
    return path


def _record(trial: Trial, call: Call) -> Call:
    trial.calls.append(call)
    trial.exit_codes.append(call.rc)
    return call


def _expect(trial: Trial, kind: str) -> Trial:
    first = trial.exit_codes[0] if trial.exit_codes else None
    if first is not None and first not in EXIT_CODES[kind]:
        trial.failures.append(f"exit {first}, documented {sorted(EXIT_CODES[kind])}")
    return trial


def _host_lines(call: Call, host: str) -> list[str]:
    return [ln for ln in call.problem_lines() if re.search(rf"\b{re.escape(host)}: ", ln)]


def _valid(run: Path, host: str) -> bool:
    path = run / "hosts" / f"{host}.json"
    return path.exists() and '"agent_version"' in path.read_text(errors="replace")


def _others_kept(trial: Trial, lab: FaultLab, run: Path, target: str) -> None:
    for other in lab.hosts:
        if other != target and not _valid(run, other):
            trial.lost.append(f"{other} (the host without the fault)")


def _wait_for(predicate: Callable[[], bool], proc: Any, bound: float = 120) -> bool:
    end = time.monotonic() + bound
    while not predicate() and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    return predicate()


# -- the kinds ------------------------------------------------------------------------------------
def trial_provision_signal(lab: FaultLab, trial: Trial, rng: random.Random, work: Path) -> Trial:
    """SIGINT or SIGTERM while ansible-playbook runs: 130 within 3 s, no host "provisioned",
    no play left running; then `labctl provision` brings every host back."""
    assert lab.inventory is not None
    command = rng.choice(("provision", "run"))
    sig = rng.choice((signal.SIGINT, signal.SIGTERM))
    args = [command, "-i", str(lab.inventory), "--full", "--results", str(work / "results")]
    if command == "run":
        args += ["--experiments", "storage-location"]
    proc = lab.start(*args)
    trial.at = round(rng.uniform(0.2, 6.0), 1)
    trial.detail = f"{command} --full, {sig.name} {trial.at} s into the play"
    if not _wait_for(lambda: bool(playbook_pids(proc.pid)), proc):
        trial.failures.append("the play never started")
    time.sleep(trial.at)
    signalled = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    call = _record(trial, Call([command], proc.returncode, out, err, 0.0))
    call.after_signal = time.monotonic() - signalled
    if proc.returncode == 130 and call.after_signal > 3.0:
        trial.failures.append(f"took {call.after_signal:.1f} s to stop after the signal")
    if "provisioned (" in out + err and proc.returncode == 130:
        trial.failures.append("a host was called provisioned by a cut play")
    if playbook_pids(proc.pid):
        trial.failures.append("ansible-playbook still running after labctl ended")
    again = _record(trial, lab.labctl("provision", "-i", str(lab.inventory), timeout=900))
    if again.rc != 0:
        trial.failures.append(f"provision after the cut: exit {again.rc}: {again.err[-300:]}")
    return _expect(trial, "provision-signal")


def trial_host_dir_full(lab: FaultLab, trial: Trial, rng: random.Random, work: Path) -> Trial:
    """labctl's folder on one host nearly full: the run completes or that host's line says the
    disk is full (never "killed or restarted"); the other host's result is kept."""
    target = rng.choice(lab.hosts)
    free = rng.choice((64 << 10, 200 << 10, 1 << 20, 4 << 20, 12 << 20))
    results = work / "results"
    with nearly_full(lab, target, HOST_BASE, free) as said:
        trial.detail = f"{target}: {HOST_BASE} {said}"
        call = _record(trial, lab.labctl(*lab.probe_args(results, "storage-location", ())))
    runs = run_dirs(results)
    if not runs:
        trial.failures.append(f"no run folder: {call.err[-300:]}")
        return trial
    mine = _host_lines(call, target)
    if call.rc != 0 and not any("full" in ln or "no space" in ln for ln in mine):
        trial.failures.append(f"{target}'s line does not say the disk is full: {mine}")
    if "killed or the host restarted" in call.err or "crashed" in call.err:
        trial.failures.append("a full disk blamed on a restart or a crash")
    trial.named += [target] if mine else []
    _others_kept(trial, lab, runs[0], target)
    return _expect(trial, "host-dir-full")


def trial_engine_disk_full(lab: FaultLab, trial: Trial, rng: random.Random, work: Path) -> Trial:
    """/var/lib/docker on one host (nearly) full: a check that cannot run says "no space left
    on device"; a check with too little room says it did not run; never a cap of 0 bytes."""
    target = rng.choice(lab.hosts)
    leave = rng.choice((0, 1 << 20, 3 << 20, 40 << 20))
    sets = rng.choice(((), ("disk_floor_bytes=0",)))
    fill = ("rm -f /var/lib/docker/labctl-fill; head -c $(( $(df -Pk /var/lib/docker | awk "
            f"'NR==2 {{print $4}}') * 1024 - {leave} )) /dev/zero > /var/lib/docker/labctl-fill "
            "2>/dev/null; df -Pk /var/lib/docker | tail -1")  # fmt: skip
    _rc, said = lab.exec(target, fill)
    free = said.split()[-3] if said.split() else "?"
    trial.detail = f"{target}: /var/lib/docker {free} KiB free {' '.join(sets)}"
    try:
        call = _record(
            trial, lab.labctl(*lab.probe_args(work / "results", "storage-location,disk", sets))
        )
    finally:
        lab.exec(target, "rm -f /var/lib/docker/labctl-fill")
    runs = run_dirs(work / "results")
    if not runs:
        trial.failures.append(f"no run folder: {call.err[-300:]}")
        return trial
    mine = _host_lines(call, target)
    if any("could not run" in ln and "no space left" not in ln for ln in mine):
        trial.failures.append(f"a check could not run without saying the disk is full: {mine}")
    if "cap of 0 bytes" in call.out + call.err or "up to 0 bytes" in call.out + call.err:
        trial.failures.append("a verdict about a cap of 0 bytes")
    trial.named += [target] if mine else []
    _others_kept(trial, lab, runs[0], target)
    return _expect(trial, "engine-disk-full")


def trial_dead_engine(lab: FaultLab, trial: Trial, rng: random.Random, work: Path) -> Trial:
    """The inner dockerd of one host killed while the agents run: that host's checks that could
    not run are problem lines (non-zero exit), the other host is whole; bringing the lab up
    again (what `labctl run --lab` does first) starts the engine in well under 90 s."""
    target = rng.choice(lab.hosts)
    results = work / "results"
    proc = lab.start(*lab.probe_args(results, "storage-location,processes", ("processes_cap=150",)))
    _wait_for(lambda: bool(run_dirs(results)), proc, 60)
    trial.at = round(rng.uniform(0.0, 6.0), 1)
    time.sleep(trial.at)
    _rc, out = lab.exec(target, "pkill -KILL -x dockerd && echo killed; true")
    trial.detail = f"{target}: dockerd {'killed' if 'killed' in out else 'not found'}"
    out, err = proc.communicate(timeout=PROBE_TIMEOUT + 120)
    call = _record(trial, Call(["probe"], proc.returncode, out, err, 0.0))
    started = time.monotonic()
    lab._driver.up()
    took = time.monotonic() - started
    trial.detail += f", lab up {took:.0f} s"
    if took > 90:
        trial.failures.append(f"lab up took {took:.0f} s with a dead engine")
    runs = run_dirs(results)
    if not runs:
        trial.failures.append(f"no run folder: {err[-300:]}")
        return trial
    if call.rc == 0 and "Cannot connect to the Docker daemon" in call.out + call.err:
        trial.failures.append("exit 0 though a check met a dead engine")
    check_results(trial, lab, runs[0], [call])
    return _expect(trial, "dead-engine")


_SKEW_DIR = "/usr/local/lib/labctl-faults-skew"
_SKEW_PY = "/usr/local/bin/python3-labctl-skewed"


def trial_clock_step(lab: FaultLab, trial: Trial, rng: random.Random, work: Path) -> Trial:
    """The agent's wall clock (time.time) steps by -2 d .. +2 d a few seconds into its run (an
    interpreter wrapper with a sitecustomize shim, named by labctl_agent_python): durations
    stay true, no check runs out of its budget, the run is whole."""
    target = rng.choice(lab.hosts)
    step = rng.choice((-172_800, -3_600, 3_600, 172_800))
    after = round(rng.uniform(0.0, 4.0), 1)
    trial.detail = f"{target}: clock {step:+d} s after {after} s"
    shim = "\n".join(("import time", "_real = time.time", "_t0 = _real()",
                       f"_step, _after = {step}, {after}",
                       "time.time = lambda: _real() + (_step if _real() - _t0 >= _after else 0)",
                       ""))  # fmt: skip
    wrapper = f'#!/bin/sh\nPYTHONPATH={_SKEW_DIR} exec /usr/bin/python3 "$@"\n'
    setup = (f"mkdir -p {_SKEW_DIR} && printf '%s' {_q(shim)} > {_SKEW_DIR}/sitecustomize.py "
             f"&& printf '%s' {_q(wrapper)} > {_SKEW_PY} && chmod 755 {_SKEW_PY}")  # fmt: skip
    rc, out = lab.exec(target, setup)
    assert rc == 0, out
    inventory = lab_inventory(lab)
    hosts = host_vars(inventory)
    hosts[target]["labctl_agent_python"] = _SKEW_PY
    inv = write_inventory(inventory, hosts, work / "skewed.yml")
    try:
        args = ["probe", "-i", str(inv), "--results", str(work / "results"), "--experiments",
                "storage-location,processes", "--set", "processes_cap=150"]  # fmt: skip
        call = _record(trial, lab.labctl(*args, timeout=PROBE_TIMEOUT + 120))
    finally:
        lab.exec(target, f"rm -rf {_SKEW_DIR} {_SKEW_PY}")
    runs = run_dirs(work / "results")
    if not runs:
        trial.failures.append(f"no run folder: {call.err[-300:]}")
        return trial
    if "out of time" in call.out + call.err or "time budget" in call.out + call.err:
        trial.failures.append("a check ran out of its time budget after a clock step")
    data = json.loads((runs[0] / "hosts" / f"{target}.json").read_text() or "{}")
    for exp in data.get("experiments") or []:
        took = exp.get("duration_s")
        if isinstance(took, int | float) and not 0 <= took < PROBE_TIMEOUT:
            trial.failures.append(f"{exp.get('name')}: duration_s {took}")
    check_results(trial, lab, runs[0], [call])
    return _expect(trial, "clock-step")


def _q(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
