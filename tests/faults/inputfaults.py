"""Faults in what labctl is given and where it writes (issue 18's campaign): the results
folder removed or made read-only in the provision, probe or collect stage; a bad ``--set``; an
odd host name in the inventory. See stagefaults.py for the faults on the hosts."""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from .faultlib import (
    PROBE_TIMEOUT,
    Call,
    FaultLab,
    Trial,
    check_results,
    collect_until_done,
    run_dirs,
)
from .stagefaults import (
    BAD_SETS,
    ODD_NAMES,
    _expect,
    _host_lines,
    _others_kept,
    _record,
    _wait_for,
    host_vars,
    lab_inventory,
    write_inventory,
)


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only even for root (a read-only bind mount over itself), undone on
    every path."""
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _break(run: Path, how: str) -> contextlib.AbstractContextManager[None]:
    if how == "read-only":
        return read_only(run)
    subprocess.run(["rm", "-rf", str(run)], check=False)
    return contextlib.nullcontext()


def trial_results_gone(lab: FaultLab, trial: Trial, rng: random.Random, work: Path) -> Trial:
    """The run folder removed or made read-only in one stage: one line naming it, exit 5 (0
    when the run had ended first), no traceback; a read-only folder made writable again is
    collected whole."""
    assert lab.inventory is not None
    stage = rng.choice(("provision", "probe", "collect"))
    how = rng.choice(("removed", "read-only"))
    results = work / "results"
    trial.at = round(rng.uniform(0.0, 3.0), 1)
    trial.detail = f"{how} in the {stage} stage, {trial.at} s in"
    if stage == "provision":
        args = ["run", "-i", str(lab.inventory), "--results", str(results),
                "--experiments", "storage-location"]  # fmt: skip
        ready = lambda: any((r / "ansible").exists() for r in run_dirs(results))  # noqa: E731
    else:
        args = lab.probe_args(results, "storage-location,processes", ("processes_cap=150",))
        ready = lambda: bool(run_dirs(results))  # noqa: E731
    proc = lab.start(*args)
    _wait_for(ready, proc)
    time.sleep(trial.at)
    runs = run_dirs(results)
    if stage == "collect":
        proc.send_signal(signal.SIGINT)
    elif not runs:
        trial.failures.append("no run folder to break")
    breaker = _break(runs[0], how) if runs and stage != "collect" else contextlib.nullcontext()
    with breaker:
        out, err = proc.communicate(timeout=PROBE_TIMEOUT + 300)
        first = _record(trial, Call([args[0]], proc.returncode, out, err, 0.0))
    if stage == "collect":
        if not runs:
            trial.failures.append(f"no run folder: {err[-300:]}")
            return trial
        with _break(runs[0], how):
            first = _record(trial, lab.labctl("collect", str(runs[0])))
        trial.exit_codes = trial.exit_codes[1:] + trial.exit_codes[:1]  # the faulted one first
    if first.rc not in (0, 130) and not first.problem_lines():
        trial.failures.append(f"exit {first.rc} with no problem line: {first.err[-300:]}")
    if first.rc != 0 and runs and str(runs[0]) not in first.err and first.rc == 5:
        trial.failures.append(f"the line does not name {runs[0]}: {first.problem_lines()}")
    if how == "read-only" and runs and runs[0].is_dir():
        col = collect_until_done(lab, runs[0], trial)
        if col.rc != 0:
            trial.failures.append(f"collect once writable: exit {col.rc}: {col.err[-300:]}")
        check_results(trial, lab, runs[0], trial.calls)
    return _expect(trial, "results-gone")


def trial_bad_set(lab: FaultLab, trial: Trial, rng: random.Random, work: Path) -> Trial:
    """A bad --set: exit 2 within seconds, one short line naming it, no run folder."""
    value = rng.choice(BAD_SETS)
    command = rng.choice(("probe", "run"))
    trial.detail = f"{command} --set {value[:40]}{'...' if len(value) > 40 else ''}"
    assert lab.inventory is not None
    call = _record(trial, lab.labctl(command, "-i", str(lab.inventory), "--results",
                                     str(work / "results"), "--set", value))  # fmt: skip
    if call.seconds > 10:
        trial.failures.append(f"took {call.seconds:.1f} s to refuse")
    lines = [ln for ln in call.err.splitlines() if ln.strip()]
    if len(lines) != 1 or len(lines[0]) > 700 or "--set" not in lines[0]:
        trial.failures.append(f"not one short line naming --set: {call.err[:300]!r}")
    if run_dirs(work / "results"):
        trial.failures.append("a run folder was made for a refused --set")
    return _expect(trial, "bad-set")


def trial_odd_host_name(lab: FaultLab, trial: Trial, rng: random.Random, work: Path) -> Trial:
    """One host renamed oddly in a copy of the inventory, then `labctl run -i` (provision and
    probe): the name is refused at load (exit 2, one line) or works whole; the other host is
    probed either way; nothing is written outside the results folder."""
    inventory = lab_inventory(lab)
    hosts = host_vars(inventory)
    target = rng.choice(sorted(hosts))
    odd = rng.choice(ODD_NAMES)
    hosts[odd] = hosts.pop(target)
    trial.detail = f"{target} named {odd[:40]!r}{'...' if len(odd) > 40 else ''}"
    inv = write_inventory(inventory, hosts, work / "odd.yml")
    pwned = Path("/tmp/labctl-pwned")
    results = work / "results"
    call = _record(trial, lab.labctl("run", "-i", str(inv), "--results", str(results),
                                     "--experiments", "storage-location"))  # fmt: skip
    if pwned.exists():
        pwned.unlink()
        trial.failures.append("a host name ran as a command")
    strays = [p for p in work.iterdir() if p.name not in ("results", "odd.yml")]
    if strays:
        trial.failures.append(f"written outside the results folder: {strays}")
    runs = run_dirs(results)
    if not runs:
        trial.failures.append(f"no run folder: {call.err[-300:]}")
        return trial
    if call.rc == 2:
        if not any(odd in ln for ln in call.problem_lines()):
            trial.failures.append(f"refused without naming {odd[:40]!r}")
        trial.named.append(odd)
    elif call.rc == 0:
        # ansible may read the name its own way (`host:1` in YAML is host `host`, port 1): the
        # result is the one file that is not the other hosts'
        files = {p.stem for p in (runs[0] / "hosts").glob("*.json")} - (set(hosts) - {odd})
        if odd not in files and len(files) != 1:
            trial.lost.append(f"{odd[:40]} (accepted, but no result file: {sorted(files)})")
    else:
        trial.failures.append(f"exit {call.rc}: {_host_lines(call, odd) or call.err[-300:]}")
    renamed = FaultLab(lab.name, lab.home, lab.suites)
    renamed.hosts = [h for h in hosts if h != odd]
    _others_kept(trial, renamed, runs[0], odd)
    return _expect(trial, "odd-host-name")
