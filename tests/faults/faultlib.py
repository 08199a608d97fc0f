"""Fault injection against a container lab: one place for the suite (tests/faults) and the
campaign (bench/faults.py).

A trial runs the real `labctl` (a subprocess, as a user would), injects one fault at a random
moment drawn from a seeded generator, recovers the way the README says (`labctl collect`), and
records what a user would see: the exit code, one-line problems, tracebacks, results that are
neither on the controller nor named in a problem line, and what is left on the lab hosts after
the next run (containers, agent processes, run folders, shared folders, mounts, loop devices).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl.drivers.base import MiB
from labctl.results import load_host_file

REPO = Path(__file__).resolve().parents[2]
KINDS = (
    "ctrl-c",
    "kill-controller",
    "kill-sshd",
    "restart-host",
    "pause-host",
    "kill-agent",
    "two-probes",
    "two-collects",
    "full-disk",
    "damaged-file",
)
#: what each kind may exit with (the README's table); probe first, then the recovery step
EXIT_CODES: dict[str, set[int]] = {
    "ctrl-c": {130, 0},  # 0 only when the run had finished before the signal
    "kill-controller": {-9, 0},
    "kill-sshd": {0},
    "restart-host": {0, 3, 4},
    "pause-host": {0},
    "kill-agent": {0, 4},
    "two-probes": {0},
    "two-collects": {130, 0},  # the probe, cut by Ctrl-C (0 when it had finished)
    "full-disk": {0, 5},
    "damaged-file": {5},
}
#: faults after which every host's result must be on the controller (the agents survive)
MUST_KEEP = {"ctrl-c", "kill-controller", "kill-sshd", "pause-host", "two-probes", "full-disk",
             "two-collects"}  # fmt: skip
PROBE_TIMEOUT = 150
DAMAGES = (
    "invalid-utf8",
    "random-bytes",
    "deep-nesting",
    "truncated",
    "host-42",
    "other-host",
    "wrong-metric-type",
    "other-run",
)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Call:
    """One labctl invocation: its exit code, output and how long it took."""

    args: list[str]
    rc: int
    out: str
    err: str
    seconds: float
    #: seconds from a signal sent to it until it exited (None: no signal)
    after_signal: float | None = None

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.out + self.err

    def problem_lines(self) -> list[str]:
        return [
            line
            for line in self.err.splitlines()
            if line.startswith(("problem:", "error:", "interrupted"))
        ]


@dataclass
class Trial:
    kind: str
    seed: int
    at: float = 0.0
    detail: str = ""
    calls: list[Call] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    named: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def tracebacks(self) -> int:
        return sum(1 for c in self.calls if c.traceback)

    @property
    def ok(self) -> bool:
        return not (self.failures or self.lost or self.leftovers or self.tracebacks)

    def line(self) -> str:
        state = (
            "ok"
            if self.ok
            else "FAIL "
            + "; ".join(self.failures + [f"lost {h}" for h in self.lost] + self.leftovers)
        )
        return (
            f"{self.kind:<16} seed {self.seed:<6} at {self.at:5.1f}s exit {self.exit_codes} "
            f"{self.detail} -> {state}"
        )


class FaultLab:
    """A small docker lab and labctl as a subprocess, in one LABCTL_HOME."""

    def __init__(self, name: str, home: Path, suites: Sequence[str] = ("bookworm", "bullseye")):
        self.name = name
        self.home = home
        self.suites = tuple(suites)
        self.inventory: Path | None = None
        self.hosts: list[str] = []
        self._driver: Any = None

    # -- the lab -------------------------------------------------------------------------------
    def up(self) -> FaultLab:
        from labctl.drivers.docker import DockerLab, DockerLabSpec

        os.environ["LABCTL_HOME"] = str(self.home)
        spec = DockerLabSpec(name=self.name, suites=self.suites, disk_size=512 * MiB)
        self._driver = DockerLab(spec)
        state = self._driver.up()
        self.inventory = state.inventory
        self.hosts = [h.name for h in state.hosts]
        self.loops_at_start = self.controller_loops()
        return self

    def down(self) -> list[str]:
        if self._driver is None:
            return []
        for host in self.hosts:  # a trial may have left one paused
            subprocess.run(["docker", "unpause", self.container(host)], capture_output=True)
        report = self._driver.down()
        return list(report.problems)

    def container(self, host: str) -> str:
        return f"labctl-lab-{self.name}-{host}"

    def exec(self, host: str, script: str, timeout: float = 60) -> tuple[int, str]:
        res = subprocess.run(
            ["docker", "exec", self.container(host), "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return res.returncode, res.stdout + res.stderr

    def wait_ready(self, host: str, bound: float = 120) -> None:
        """After a restart: the inner dockerd answers and sshd listens again."""
        end = time.monotonic() + bound
        while time.monotonic() < end:
            with contextlib.suppress(subprocess.SubprocessError):
                rc, _ = self.exec(host, "/usr/local/sbin/labctl-dockerd status", timeout=20)
                if rc == 0:
                    return
            time.sleep(1)
        raise AssertionError(f"{host} not ready {bound:.0f} s after a restart")

    def controller_loops(self) -> int:
        res = subprocess.run(["losetup", "-a"], capture_output=True, text=True)
        return sum(1 for line in res.stdout.splitlines() if f"labctl-disk-{self.name}-" in line)

    # -- labctl --------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["LABCTL_HOME"] = str(self.home)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env["COLUMNS"] = "200"
        return env

    def start(self, *args: str) -> subprocess.Popen[str]:
        self.home.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(
            [sys.executable, "-m", "labctl.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
            cwd=str(self.home),
            # Ctrl-C must reach labctl as at a terminal, even when this harness was started in
            # the background (which ignores SIGINT, and children inherit that)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def labctl(self, *args: str, timeout: float = 300, in_process: bool = False) -> Call:
        """labctl as a subprocess; ``in_process``: through click's runner (offline commands,
        seconds faster; an exception that is not an exit counts as a traceback)."""
        t0 = time.monotonic()
        if in_process:
            import traceback

            from click.testing import CliRunner

            from labctl.cli import main

            res = CliRunner().invoke(main, list(args), env={"COLUMNS": "200"})
            err = res.stderr
            if res.exception is not None and not isinstance(res.exception, SystemExit):
                err += "".join(traceback.format_exception(res.exception))
            return Call(list(args), res.exit_code, res.stdout, err, time.monotonic() - t0)
        proc = self.start(*args)
        out, err = proc.communicate(timeout=timeout)
        return Call(list(args), proc.returncode, out, err, time.monotonic() - t0)

    def probe_args(self, results: Path, experiments: str, sets: Sequence[str]) -> list[str]:
        assert self.inventory is not None
        args = ["probe", "-i", str(self.inventory), "--results", str(results)]
        args += ["--experiments", experiments, "--timeout", str(PROBE_TIMEOUT)]
        for s in sets:
            args += ["--set", s]
        return args

    # -- what is left on the hosts -------------------------------------------------------------
    def leftovers(self) -> list[str]:
        """Everything of a finished run still on a host (call when no agent should run)."""
        script = r"""
docker ps -aq --filter name=labctl-probe- | sed 's/^/container /'
pgrep -f '[p]robe_agent-[0-9a-f]*[.]pyz run' | sed 's/^/agent process /'
ls -A /var/lib/labctl/work/runs 2>/dev/null | sed 's/^/agent run folder /'
for d in /var/lib/labctl/runs/*; do
  [ -d "$d" ] || continue
  for f in $(ls -A "$d"); do
    case "$f" in result.json|agent.log) ;; *) echo "controller run file $d/$f";; esac
  done
done
ls -d /var/lib/labctl-probe-*-fs /var/lib/docker/labctl-probe-*-fs 2>/dev/null \
  | sed 's/^/shared folder /'
grep labctl-probe /proc/mounts | sed 's/^/mount /'
true
"""
        found = []
        for host in self.hosts:
            rc, out = self.exec(host, script)
            found += [f"{host}: {line}" for line in out.splitlines() if line.strip()]
            if rc != 0:
                found.append(f"{host}: leftover check failed ({out.strip()[:200]})")
        loops = self.controller_loops()
        if loops != self.loops_at_start:
            found.append(f"controller: {loops} loop devices, {self.loops_at_start} at the start")
        return found


def run_dirs(results: Path) -> list[Path]:
    if not results.is_dir():
        return []
    return sorted(p for p in results.iterdir() if p.is_dir() and (p / "hosts").is_dir())


def save_calls(trial: Trial, work: Path) -> None:
    """Each call's output into the trial's folder (to read after a failed trial)."""
    work.mkdir(parents=True, exist_ok=True)
    for i, c in enumerate(trial.calls):
        text = f"$ labctl {' '.join(c.args)}\nexit {c.rc} after {c.seconds:.1f} s\n"
        (work / f"call-{i}-{c.args[0]}.log").write_text(text + c.out + "\n--- stderr\n" + c.err)


def check_results(trial: Trial, lab: FaultLab, run: Path, calls: Sequence[Call]) -> None:
    """Every host: a valid agent result on the controller, or a line naming it (else lost)."""
    lines = [line for c in calls for line in c.problem_lines()]
    meta: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        meta = json.loads((run / "run.json").read_text())
    for host in lab.hosts:
        res = load_host_file(run / "hosts" / f"{host}.json", str(meta.get("run_id") or run.name))
        valid = res.ok and bool(res.data.get("agent_version"))
        mine = [line for line in lines if re.search(rf"\b{re.escape(host)}: ", line)]
        if valid:
            continue
        if mine:
            trial.named.append(host)
        # stopped before its agent started: nothing was measured, so nothing can be lost
        never = any("never started" in line for line in mine)
        if (trial.kind in MUST_KEEP and not never) or not mine:
            trial.lost.append(
                f"{host} ({res.error['message'] if res.error else 'no agent result'})"
            )
    if meta and meta.get("status") in (None, "") and run_dirs(run.parent):
        trial.failures.append(f"run.json of {run.name} has no status after recovery")


def collect_until_done(lab: FaultLab, run: Path, trial: Trial, bound: float = 150) -> Call:
    """`labctl collect` again while an agent is still running (bounded)."""
    end = time.monotonic() + bound
    while True:
        call = lab.labctl("collect", str(run))
        trial.calls.append(call)
        if call.rc == 0 or "still running" not in call.err or time.monotonic() > end:
            return call
        time.sleep(3)


@contextlib.contextmanager
def small_tmpfs(size: str = "16m") -> Iterator[Path]:
    """A small tmpfs of our own, unmounted on every path."""
    mnt = Path(tempfile.mkdtemp(prefix="labctl-faults-tmpfs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        res = subprocess.run(["umount", str(mnt)], capture_output=True)
        if res.returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        with contextlib.suppress(OSError):
            mnt.rmdir()


def fill(path: Path, leave_bytes: int) -> None:
    """Fill the filesystem of ``path`` until about ``leave_bytes`` are free."""
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    with (path / "filler").open("wb") as fh:
        fh.write(b"\0" * max(0, free - leave_bytes))


def damage(path: Path, how: str, rng: random.Random) -> None:
    """Damage one host file the way a disk, a copy or a hand edit would."""
    raw = path.read_bytes()
    data = json.loads(raw) if how not in ("invalid-utf8", "random-bytes", "truncated") else None
    if how == "invalid-utf8":
        at = rng.randrange(10, max(11, len(raw) - 10))
        path.write_bytes(raw[:at] + b"\xff\xfe" + raw[at + 2 :])
    elif how == "random-bytes":
        path.write_bytes(rng.randbytes(rng.choice((4096, 2 << 20, 50 << 20))))
    elif how == "deep-nesting":
        path.write_text("[" * 200_000 + "]" * 200_000)
    elif how == "truncated":
        path.write_bytes(raw[: rng.randrange(1, len(raw) - 1)])
    elif how == "host-42":
        assert data is not None
        data["host"] = 42
        path.write_text(json.dumps(data))
    elif how == "other-host":
        other = next(p for p in sorted(path.parent.glob("*.json")) if p != path)
        shutil.copy(other, path)
    elif how == "wrong-metric-type":
        assert data is not None
        exp = next(e for e in data["experiments"] if e.get("metrics"))
        key = rng.choice(sorted(exp["metrics"]))
        exp["metrics"] = rng.choice(("oops", [1, 2], {key: {"nested": True}}))
        path.write_text(json.dumps(data))
    elif how == "other-run":
        assert data is not None
        data["run_id"] = "20200101-000000-dead"
        path.write_text(json.dumps(data))
    else:
        raise ValueError(how)


# -- the trials -----------------------------------------------------------------------------------
def run_trial(
    lab: FaultLab,
    kind: str,
    seed: int,
    work: Path,
    *,
    experiments: str = "storage-location,processes",
    sets: Sequence[str] = ("processes_cap=150",),
    golden: Path | None = None,
) -> Trial:
    """One injected fault, its recovery and its checks (leftovers: see :func:`next_run`)."""
    rng = random.Random(seed)
    trial = Trial(kind, seed)
    work.mkdir(parents=True, exist_ok=True)
    results = work / "results"
    if kind == "damaged-file":
        return damaged_trial(lab, trial, rng, work, golden)
    if kind == "full-disk":
        return _full_disk(lab, trial, rng, work, experiments, sets)
    if kind == "two-probes":
        return _two_probes(lab, trial, rng, work, experiments, sets)
    if kind == "two-collects":
        return _two_collects(lab, trial, rng, work, experiments, sets)
    target = rng.choice(lab.hosts)
    # most faults land while the agents run (a random moment after the run folder appears);
    # one in five in the controller's first seconds (imports, inventory, connecting)
    early = rng.random() < 0.2
    delay = rng.uniform(0.5, 3.0) if early else rng.uniform(0.0, 8.0)
    trial.detail = "not injected: the run ended first"
    proc = lab.start(*lab.probe_args(results, experiments, sets))
    t0 = time.monotonic()
    signalled: list[float] = []
    cancel = threading.Event()

    def inject() -> None:
        if not early:
            end = time.monotonic() + 60
            while not run_dirs(results) and proc.poll() is None and time.monotonic() < end:
                time.sleep(0.05)
        if cancel.wait(delay) or proc.poll() is not None:
            return
        trial.at = round(time.monotonic() - t0, 1)
        trial.detail = "early: " if early else ""
        if kind in ("ctrl-c", "kill-controller"):
            sig = (
                signal.SIGKILL
                if kind == "kill-controller"
                else rng.choice((signal.SIGINT, signal.SIGTERM))
            )
            trial.detail += signal.Signals(sig).name
            signalled.append(time.monotonic())
            proc.send_signal(sig)
        elif kind == "kill-sshd":
            _rc, out = lab.exec(
                target, "pgrep -c -f '^sshd: [r]oot@'; pkill -KILL -f '^sshd: [r]oot@'; true"
            )
            trial.detail += f"{target}: {out.strip() or '0'} sshd sessions killed"
        elif kind == "restart-host":
            subprocess.run(["docker", "restart", "-t", "1", lab.container(target)],
                           capture_output=True, check=False)  # fmt: skip
            trial.detail += f"{target} restarted"
        elif kind == "pause-host":
            pause = round(rng.uniform(3, 25), 1)
            subprocess.run(["docker", "pause", lab.container(target)], capture_output=True)
            time.sleep(pause)
            subprocess.run(["docker", "unpause", lab.container(target)], capture_output=True)
            trial.detail += f"{target} paused {pause} s"
        elif kind == "kill-agent":
            _rc, out = lab.exec(
                target, "pkill -KILL -f '[p]robe_agent-[0-9a-f]*[.]pyz run' && echo killed"
            )
            trial.detail += f"{target}: agent {'killed' if 'killed' in out else 'not running'}"
        else:
            raise ValueError(kind)

    injector = threading.Thread(target=inject, daemon=True)
    injector.start()
    try:
        out, err = proc.communicate(timeout=PROBE_TIMEOUT + 120)
    finally:
        cancel.set()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    injector.join(60)
    call = Call(["probe"], proc.returncode, out, err, time.monotonic() - t0)
    if signalled:
        call.after_signal = t0 + call.seconds - signalled[0]
    trial.calls.append(call)
    trial.exit_codes.append(call.rc)
    if kind == "restart-host":
        if trial.detail.startswith("not injected"):  # then between runs: the next run must
            subprocess.run(["docker", "restart", "-t", "1", lab.container(target)],  # find it
                           capture_output=True, check=False)  # fmt: skip
            trial.detail = f"{target} restarted after the run"
        lab.wait_ready(target)
    runs = run_dirs(results)
    if not runs:
        if call.rc in (130, -9) and trial.detail.startswith("early"):
            trial.detail += " (stopped before a run folder existed)"
            return _expect(trial, kind)
        trial.failures.append(f"no run folder (exit {call.rc}): {call.err.strip()[-300:]}")
        return trial
    run = runs[0]
    if kind == "ctrl-c" and signalled and call.rc == 0 and call.seconds - trial.at > 1.0:
        trial.failures.append(f"exit 0 {call.seconds - trial.at:.1f} s after the signal")
    if kind == "ctrl-c" and call.rc == 130:
        if call.after_signal is not None and call.after_signal > 2.0:
            trial.failures.append(f"took {call.after_signal:.1f} s to stop after the signal")
        if "labctl collect" not in call.err:
            trial.failures.append("no `labctl collect` hint after the interrupt")
        meta = json.loads((run / "run.json").read_text())
        if meta.get("status") != "interrupted":
            trial.failures.append(f"run.json status {meta.get('status')!r} after the interrupt")
    calls = [call]
    if kind in ("ctrl-c", "kill-controller") and call.rc != 0:
        col = collect_until_done(lab, run, trial)
        calls.append(col)
        trial.exit_codes.append(col.rc)
        unexplained = [p for p in col.problem_lines() if "never started" not in p]
        if col.rc != 0 and (col.rc != 4 or unexplained):  # 4: a host stopped before its agent
            trial.failures.append(f"collect exit {col.rc}: {col.err.strip()[-300:]}")
        meta = json.loads((run / "run.json").read_text())
        if not meta.get("status") or not meta.get("finished"):
            trial.failures.append("collect left run.json without status/finished")
        _matrix_has_every_host(trial, lab, run)
    check_results(trial, lab, run, calls)
    return _expect(trial, kind)


def _expect(trial: Trial, kind: str) -> Trial:
    allowed = EXIT_CODES[kind] | {0}
    first = trial.exit_codes[0] if trial.exit_codes else None
    if first is not None and first not in allowed:
        trial.failures.append(f"exit {first}, documented {sorted(EXIT_CODES[kind])}")
    return trial


def _matrix_has_every_host(trial: Trial, lab: FaultLab, run: Path) -> None:
    matrix = run / "matrix.csv"
    if not matrix.exists():
        trial.failures.append("no matrix.csv")
        return
    header = matrix.read_text().splitlines()[0]
    for host in lab.hosts:
        if not re.search(rf"(^|,)\"?{re.escape(host)}[ ,\"]", header + ","):
            trial.failures.append(f"matrix.csv has no column for {host}")


def _two_probes(
    lab: FaultLab, trial: Trial, rng: random.Random, work: Path, exps: str, sets: Sequence[str]
) -> Trial:
    trial.at = round(rng.uniform(0, 5), 1)
    a = lab.start(*lab.probe_args(work / "a", exps, sets))
    time.sleep(trial.at)
    b = lab.start(*lab.probe_args(work / "b", exps, sets))
    trial.detail = f"second probe {trial.at} s later"
    for proc, root in ((a, work / "a"), (b, work / "b")):
        out, err = proc.communicate(timeout=PROBE_TIMEOUT + 120)
        call = Call(["probe"], proc.returncode, out, err, 0.0)
        trial.calls.append(call)
        trial.exit_codes.append(call.rc)
        runs = run_dirs(root)
        if not runs:
            trial.failures.append(f"no run folder: {err.strip()[-300:]}")
            continue
        check_results(trial, lab, runs[0], [call])
    if any(rc != 0 for rc in trial.exit_codes):
        trial.failures.append(f"exit codes {trial.exit_codes}, documented [0]")
    return trial


def _two_collects(
    lab: FaultLab, trial: Trial, rng: random.Random, work: Path, exps: str, sets: Sequence[str]
) -> Trial:
    """Ctrl-C while the agents run, then two `labctl collect` of the run at once: one waits for
    the other, and no result is lost (each wrote errors over the other's results before)."""
    results = work / "results"
    proc = lab.start(*lab.probe_args(results, exps, sets))
    end = time.monotonic() + 60
    while not run_dirs(results) and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    trial.at = round(rng.uniform(1.0, 4.0), 1)
    time.sleep(trial.at)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=PROBE_TIMEOUT)
    trial.calls.append(Call(["probe"], proc.returncode, out, err, 0.0))
    trial.exit_codes.append(proc.returncode)
    runs = run_dirs(results)
    if not runs:
        trial.failures.append(f"no run folder (exit {proc.returncode}): {err.strip()[-300:]}")
        return trial
    run = runs[0]
    both = [lab.start("collect", str(run)) for _ in range(2)]
    trial.detail = f"SIGINT {trial.at} s in, then two collects at once"
    for col in both:
        out, err = col.communicate(timeout=PROBE_TIMEOUT + 60)
        trial.calls.append(Call(["collect"], col.returncode, out, err, 0.0))
    last = collect_until_done(lab, run, trial)
    unexplained = [p for p in last.problem_lines() if "never started" not in p]
    if last.rc != 0 and (last.rc != 4 or unexplained):
        trial.failures.append(f"collect exit {last.rc}: {last.err.strip()[-300:]}")
    check_results(trial, lab, run, trial.calls)
    return _expect(trial, "two-collects")


def _full_disk(
    lab: FaultLab, trial: Trial, rng: random.Random, work: Path, exps: str, sets: Sequence[str]
) -> Trial:
    leave = rng.choice((0, 4 << 10, 64 << 10, 256 << 10, 1 << 20))
    trial.at = 0.0
    trial.detail = f"{leave >> 10} KiB free"
    with small_tmpfs("16m") as mnt:
        results = mnt / "results"
        results.mkdir()
        fill(mnt, leave)
        call = lab.labctl(*lab.probe_args(results, exps, sets), timeout=PROBE_TIMEOUT + 120)
        trial.calls.append(call)
        trial.exit_codes.append(call.rc)
        if call.rc not in EXIT_CODES["full-disk"]:
            trial.failures.append(f"exit {call.rc}: {call.err.strip()[-300:]}")
        runs = run_dirs(results)
        (mnt / "filler").unlink()  # space again: what the hint says to do
        if not runs:
            if call.rc != 5 or not call.problem_lines():
                trial.failures.append("no run folder and no one-line problem")
            return trial
        run = runs[0]
        calls = [call]
        if call.rc != 0:
            if "labctl collect" not in call.err and "labctl report" not in call.err:
                trial.failures.append("no `labctl collect` or `labctl report` hint on a full disk")
            col = collect_until_done(lab, run, trial)
            calls.append(col)
            trial.exit_codes.append(col.rc)
            if col.rc != 0:
                trial.failures.append(f"collect exit {col.rc}: {col.err.strip()[-300:]}")
            _matrix_has_every_host(trial, lab, run)
        check_results(trial, lab, run, calls)
        keep = work / "results"
        shutil.copytree(run, keep / run.name)  # the run outlives the tmpfs (for the report)
    return trial


def damaged_trial(
    lab: FaultLab,
    trial: Trial,
    rng: random.Random,
    work: Path,
    golden: Path | None,
    how: str | None = None,
) -> Trial:
    """Offline: a copy of a good run with one host file damaged; report and compare."""
    if golden is None:
        raise ValueError("damaged-file needs a good run folder")
    how = how or rng.choice(DAMAGES)
    run = work / "damaged" / golden.name
    shutil.copytree(golden, run)
    files = sorted((run / "hosts").glob("*.json"))
    victim = rng.choice(files)
    if how == "other-host" and len(files) < 2:
        how = "host-42"
    damage(victim, how, rng)
    host = victim.stem
    trial.detail = f"{host}: {how}"
    rep = lab.labctl("report", str(run), "--no-plots", in_process=True)
    cmp = lab.labctl("compare", str(golden), str(run), in_process=True)
    trial.calls += [rep, cmp]
    trial.exit_codes += [rep.rc, cmp.rc]
    for call, what in ((rep, "report"), (cmp, "compare")):
        if call.rc != 5:
            trial.failures.append(f"{what} exit {call.rc}, documented 5")
        if not any(f"{host}" in line for line in call.problem_lines()):
            trial.failures.append(f"{what} names no problem for {host}")
    header = (run / "matrix.csv").read_text().splitlines()[0] if rep.rc == 5 else ""
    for other in files:
        if other.stem != host and other.stem not in header:
            trial.failures.append(f"report lost the healthy host {other.stem}")
    if f"{host}/" in header:
        trial.failures.append(f"a damaged file shows as another host: {header[:200]}")
    trial.named.append(host)
    return trial


def next_run(lab: FaultLab, work: Path, experiments: str = "storage-location") -> Call:
    """A plain run after a fault: it must succeed, and then nothing may be left on the hosts."""
    return lab.labctl(*lab.probe_args(work / "next", experiments, ()), timeout=PROBE_TIMEOUT + 120)


def campaign_seed() -> int:
    """LABCTL_FAULTS_SEED, else a fresh one (printed by the caller, so a failure can be rerun)."""
    env = os.environ.get("LABCTL_FAULTS_SEED")
    return int(env) if env else random.SystemRandom().randrange(1, 1_000_000)
