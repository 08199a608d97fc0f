"""A lab host whose inner dockerd died (issue 18, defect 5): bringing the lab up again (what
`labctl run --lab NAME` does first) starts it again at once, instead of waiting out 180 s and
failing every host with exit 7."""

from __future__ import annotations

import time

import pytest

from .faultlib import FaultLab, say

pytestmark = [pytest.mark.lab, pytest.mark.faults]


def test_a_dead_inner_dockerd_is_started_again_by_up(fault_lab: FaultLab) -> None:
    lab = fault_lab
    host = lab.hosts[0]
    rc, out = lab.exec(host, "pkill -KILL -x dockerd; sleep 1; /usr/local/sbin/labctl-dockerd "
                             "status; true")  # fmt: skip
    assert "stopped" in out, out
    started = time.monotonic()
    state = lab._driver.up()
    took = time.monotonic() - started
    say(f"{host}: lab up with a dead inner dockerd took {took:.1f} s")
    assert [h.name for h in state.hosts] == lab.hosts
    rc, out = lab.exec(host, "/usr/local/sbin/labctl-dockerd status")
    assert rc == 0 and out.startswith("running"), out
    assert took < 90, f"{took:.0f} s"
