"""The hosts' live view: stages read from the words the pipeline says, a summary at the end,
and the same plain lines as before when there is no terminal."""

from __future__ import annotations

import io

from rich.console import Console

from labctl.liveview import HostBoard

RUN = [
    ("h1", "creating labctl-lab-x-h1 from labctl-host:bookworm-1"),
    ("h1", "provisioning"),
    ("h1", "Install and start the engine with modules"),
    ("h1", "connected"),
    ("h1", "agent running (pid 42)"),
    ("h1", "disk: starting disk"),
    ("h1", "disk: 12 MiB so far, host free_bytes 1000"),
    ("h2", "provisioning"),
    ("h2", "failed: no Python interpreter on the host"),
    ("h1", "disk: stopped at the cap of 32 MiB: every byte landed on the host"),
    ("h1", "memory: starting memory"),
]


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=terminal, width=160, color_system=None), buf


def test_stages_and_experiments_from_the_words() -> None:
    console, _ = _console(False)
    board = HostBoard(console)
    stages = []
    for host, msg in RUN:
        board(host, msg)
        stages.append(board.rows[host].stage)
    assert stages[:5] == ["lab", "provision", "provision", "probe", "probe"]
    h1, h2 = board.rows["h1"], board.rows["h2"]
    assert h1.experiment == "memory" and h1.finished == ["disk"]
    assert h2.stage == "failed" and h2.ended is not None
    board("h1", "done")
    assert h1.stage == "done"


def test_plain_lines_without_a_terminal() -> None:
    console, buf = _console(False)
    with HostBoard(console) as board:
        for host, msg in RUN:
            board(host, msg)
    lines = buf.getvalue().splitlines()
    assert lines == [f"{h} {m}" for h, m in RUN]  # as before: no table, no summary


def test_live_table_and_summary_on_a_terminal() -> None:
    console, buf = _console(True)
    with HostBoard(console) as board:
        for host, msg in RUN:
            board(host, msg)
        board("h1", "done")
    out = buf.getvalue()
    summary = out[out.rindex("hosts") :]
    assert "h1" in summary and "done" in summary
    assert "h2" in summary and "failed" in summary
    assert "disk: starting disk" not in summary  # the live rows are gone, the summary stays
