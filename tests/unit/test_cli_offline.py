"""The CLI end to end on stored results (no lab): report, errors, exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path

import click
from click.testing import CliRunner

from labctl.cli import main
from labctl.cli.common import _Main

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "run-sample"


def test_report_on_a_copied_results_folder(tmp_path: Path) -> None:
    run = tmp_path / "copied"
    shutil.copytree(SAMPLE, run)
    res = CliRunner().invoke(main, ["report", str(run)])
    # two hosts failed in this sample: the matrix is written, the exit code says so
    assert res.exit_code != 0
    assert (run / "matrix.csv").exists() and (run / "verdicts.csv").exists()
    assert "matrix:" in res.output
    assert "trixie: cannot connect to 127.0.0.1:2222" in res.output
    assert "bullseye: result file bullseye.json is truncated JSON" in res.output
    assert "Traceback" not in res.output


def test_report_on_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert res.exit_code == 5
    assert "has no run.json" in res.output
    assert "Traceback" not in res.output


def test_help_carries_examples() -> None:
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0 and "labctl run" in res.output
    for cmd in ("run", "probe", "report", "collect", "provision", "lab"):
        assert cmd in res.output


def test_an_escaped_eoferror_is_named_not_aborted() -> None:
    """click turns EOFError into a bare "Aborted!" (CI saw one from paramiko's handshake): ours
    names it as a bug, with what to do."""

    @click.group(cls=_Main)
    def group() -> None:
        pass

    @group.command()
    def handshake() -> None:
        raise EOFError

    res = CliRunner().invoke(group, ["handshake"])
    assert res.exit_code == 1
    assert "Aborted!" not in res.output
    assert "EOFError" in res.output and "rerun with --debug" in res.output


def test_the_help_lists_exactly_the_checks_the_agent_declares() -> None:
    """One home for the experiments' names: the agent's catalog; the CLI's help is made from it."""
    import re

    from labctl.agent import catalog

    for command in ("probe", "run"):
        res = CliRunner().invoke(
            main, [command, "--help"], terminal_width=500, max_content_width=500
        )
        assert res.exit_code == 0, res.output
        said = re.search(
            r"Checks to run: all, or some of (.*?) \(comma", " ".join(res.output.split())
        )
        assert said is not None, res.output
        assert tuple(said.group(1).split(", ")) == catalog.ORDER
