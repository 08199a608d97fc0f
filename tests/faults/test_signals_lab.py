"""Ctrl-C and SIGTERM while ansible-playbook runs (issue 18, defect 1): the play is cut at once,
labctl says "interrupted" and exits 130, no host is called provisioned, nothing of the play is
left running, and the next provisioning runs cold on the hosts the play had not finished.

Before the fix ansible-runner's own signal handlers swallowed the signal for good: the play was
killed ~5 s later, every host printed "provisioned (0 changed)", exit 0, and `run` went on to
probe.
"""

from __future__ import annotations

import signal
import tempfile
import time
from pathlib import Path

import pytest

from .faultlib import FaultLab, say
from .stagefaults import STAMP, playbook_pids

pytestmark = [pytest.mark.lab, pytest.mark.faults]


@pytest.mark.parametrize(
    ("command", "sig"),
    [("provision", signal.SIGINT), ("provision", signal.SIGTERM), ("run", signal.SIGINT)],
)
def test_a_cut_play_stops_at_once_and_no_host_is_provisioned(
    command: str, sig: signal.Signals, fault_lab: FaultLab, tmp_path: Path
) -> None:
    lab = fault_lab
    assert lab.inventory is not None
    control_dirs = set(Path(tempfile.gettempdir()).glob("labctl-cp-*"))
    warm = lab.labctl("provision", "-i", str(lab.inventory), timeout=900)
    assert warm.rc == 0, warm.err[-2000:]
    args = [command, "-i", str(lab.inventory), "--full"]
    if command == "run":
        args += ["--results", str(tmp_path / "results"), "--experiments", "storage-location"]
    proc = lab.start(*args)
    end = time.monotonic() + 120
    while not playbook_pids(proc.pid) and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    assert proc.poll() is None, "labctl ended before its play started"
    time.sleep(1.5)  # tasks are running on the hosts
    signalled = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    took = time.monotonic() - signalled
    say(f"{command} cut by {sig.name}: exit {proc.returncode} {took:.1f} s after the signal")
    assert proc.returncode == 130, out[-2000:] + err[-2000:]
    assert "interrupted" in err, err[-2000:]
    assert took < 3.0, f"took {took:.1f} s to stop"
    assert "provisioned (" not in out + err, out[-2000:] + err[-2000:]
    assert "agent pushed" not in out + err  # `run` did not go on to probe
    assert "Traceback" not in err
    assert playbook_pids(proc.pid) == []
    # its SSH control folder is gone too (ansible's ControlMaster sockets)
    assert set(Path(tempfile.gettempdir()).glob("labctl-cp-*")) <= control_dirs
    for host in lab.hosts:  # the cut --full play forgot each stamp first
        _rc, said = lab.exec(host, f"test -e {STAMP} && cat {STAMP}; true")
        assert said.strip() == "", (host, said)
    again = lab.labctl("provision", "-i", str(lab.inventory), timeout=900)
    assert again.rc == 0, again.err[-2000:]
    said = again.out + again.err
    assert "already provisioned as asked (one check" not in said, said[-2000:]
    assert said.count("cold: ") >= len(lab.hosts), said[-2000:]
