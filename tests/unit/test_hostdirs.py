"""The controller's side of labctl's folder on a host (labctl/hostdirs.py): the one command that
says who labctl is there, run by this machine's sh."""

from __future__ import annotations

import os
import subprocess

import pytest

from labctl.hostdirs import _identify_script


@pytest.mark.parametrize("pythons", [(), ("no-such-python", "sh"), ("sh", "no-such-python")])
def test_the_identify_command_says_uid_home_and_the_first_interpreter_found(
    pythons: tuple[str, ...],
) -> None:
    proc = subprocess.run(
        ["sh", "-c", _identify_script(pythons)], capture_output=True, text=True, check=True
    )
    said = dict(line.split("=", 1) for line in proc.stdout.splitlines())
    assert said["uid"] == str(os.geteuid()) and said["home"] == os.environ["HOME"]
    assert said["python"] == (
        ""
        if not pythons
        else subprocess.run(
            ["sh", "-c", "command -v sh"], capture_output=True, text=True
        ).stdout.strip()
    )
